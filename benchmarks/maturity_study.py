"""The maturity study of issue #21 (nbs/36_maturity_study.ipynb): zero-shot retrieval of the pruned pretrained model
at every checkpoint saved along generation 2's pretraining, and v1, for MULTIFLOW, edges-only, OMP, LAMP, l2-norm
and SNIP at 63 / 75 / 90 %, beside each point's maturity report.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/maturity_study.py --family xvlm

One JSON per point in data/probes/study/ (committed), rewritten after each cell: an interrupted run resumes. Then the
table is printed and figures/multiflow_maturity_study.png drawn."""
import argparse
import torch
from vlprune_nb.maturity_study import study_points, run_point, study_records, study_table, study_figure, study_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="xvlm", help="the family whose checkpoints to study (default: xvlm)")
    ap.add_argument("--limit", type=int, default=1000, help="test items evaluated (default 1000)")
    ap.add_argument("--only", nargs="*", help="only these point labels")
    ap.add_argument("--draw-only", action="store_true", help="print the table and draw the figure from the records")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = study_dir()
    if not args.draw_only:
        for point in study_points(args.family):
            if args.only and point["label"] not in args.only: continue
            run_point(point, out, limit=args.limit)
    recs = study_records(out, args.family)
    print(study_table(recs))
    print("figure:", study_figure(recs, show=False))


if __name__ == "__main__": main()
