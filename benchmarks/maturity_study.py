"""The maturity study of issue #21 (nbs/34_maturity_study.ipynb): zero-shot retrieval of the pruned pretrained model
at every checkpoint saved along generation 2's pretraining, and v1, for MULTIFLOW, edges-only, OMP, LAMP, l2-norm
and SNIP at 63 / 75 / 90 %, beside each point's maturity report.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/maturity_study.py --family xvlm
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/maturity_study.py --score-allocation xvlm-v1 xvlm-gen2-step12000
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/maturity_study.py --rescaling xvlm-v1 xvlm-gen2-step12000

One JSON per point in data/probes/study/ (committed), rewritten after each cell: an interrupted run resumes. Then the
table is printed and figures/multiflow_maturity_study.png drawn. The diagnostics (score x allocation, rescaling) write one JSON per
point in data/probes/study/diagnostics/, resumably, and prints its tables."""
import argparse
import torch
from vlprune_nb.maturity_study import (study_points, run_point, study_records, study_table, study_figure, study_dir,
                                       score_allocation, score_allocation_table, rescaling_diagnostic, rescaling_table)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="xvlm", help="the family whose checkpoints to study (default: xvlm)")
    ap.add_argument("--limit", type=int, default=1000, help="test items evaluated (default 1000)")
    ap.add_argument("--only", nargs="*", help="only these point labels")
    ap.add_argument("--draw-only", action="store_true", help="print the table and draw the figure from the records")
    ap.add_argument("--rescaling", nargs="*", metavar="LABEL",
                    help="run the function-preserving rescaling diagnostic at these points")
    ap.add_argument("--score-allocation", nargs="*", metavar="LABEL",
                    help="run the score x allocation diagnostic at these points (e.g. xvlm-v1 xvlm-gen2-step12000)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = study_dir()
    if not args.draw_only and not args.score_allocation and not args.rescaling:
        for point in study_points(args.family):
            if args.only and point["label"] not in args.only: continue
            run_point(point, out, limit=args.limit)
    points = {p["label"]: p for p in study_points(args.family)}
    for label in args.score_allocation or ():
        if label not in points: raise SystemExit(f"--score-allocation: no point {label!r}; points: {list(points)}")
        print(score_allocation_table(score_allocation(points[label], out / "diagnostics", limit=args.limit)))
    for label in args.rescaling or ():
        if label not in points: raise SystemExit(f"--rescaling: no point {label!r}; points: {list(points)}")
        print(rescaling_table(rescaling_diagnostic(points[label], out / "diagnostics", limit=args.limit)))
    recs = study_records(out, args.family)
    print(study_table(recs))
    print("figure:", study_figure(recs, show=False))


if __name__ == "__main__": main()
