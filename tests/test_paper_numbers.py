"""The MULTIFLOW supplement transcription (data/paper_multiflow.json) checked against the supplement's text.

Independent of the transcriber: every value (and ± std) must occur in its table's block of the text, and for
Tables 4-10 the numbers of each table's cells must be exactly the transcribed ones (nothing added, nothing
dropped except the cells noted as skipped).

The table's block: in this text extraction each table is printed *before* its caption, so a block is the run
of '|' rows just above the "Table N." caption line, plus that caption line (it ends at the caption; the next
table or section starts after it).
"""
import json, math, re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "paper_multiflow.json"
PAPER = ROOT.parent / "shared" / "papers" / "000_31c16a1f1da9a885.txt"   # CI: ../shared/papers beside the repo
TABLES = [f"Table {n}" for n in range(4, 12)]

MODELS = {"blip", "xvlm", "dino"}
TASKS = {"retrieval", "captioning", "vqa", "classification", "pruning", "finetuning"}
METRICS = {"TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "BLEU@4", "CIDEr", "METEOR", "SPICE", "vqa_acc",
           "top1", "prune_s", "speedup", "avg_R@1",
           "lr", "epochs", "batch_size", "weight_decay", "beta1", "beta2", "warmup_pct"}        # Table 11
METHODS = {"dense", "random", "omp", "lamp", "l2norm", "local_l2norm", "snip", "itersnip", "chita", "chita++",
           "tamt", "multiflow", "multiflow_edges", "multiflow_nodes",
           "multiflow_128"}                   # Table 6's MULTIFLOW_{|D_g|=128}, the paper's name (see notes)
SPARSITIES = {0.0, 0.63, 0.75, 0.9}
NO_SPARSITY = {"Table 7", "Table 11"}         # mean over sparsities / fine-tuning setup: sparsity is null there
KEY = ("table", "model", "task", "metric", "method", "sparsity", "variant", "lambda", "dataset", "downstream")

# a number standing on its own: not part of a word (Cifar10, R@1, B/16, =128), a percentage or a power 10^{..}
NUM = re.compile(r"(?<![\w@/=.^{\-])(\d+(?:\.\d+)?)(?![\w%.^])")


@pytest.fixture(scope="module")
def data():
    if not DATA.is_file():     # .gitignore has data/*: the file ships only with a `!data/paper_multiflow.json` line
        pytest.fail(f"{DATA} is missing (is it un-ignored in .gitignore and committed?)")
    return json.loads(DATA.read_text(encoding="utf-8"))

@pytest.fixture(scope="module")
def numbers(data):
    return data["numbers"]

@pytest.fixture(scope="module")
def blocks():
    if not PAPER.is_file():
        pytest.skip(f"the MULTIFLOW supplement text is not at {PAPER} (papers live beside the repo, in ../shared/papers)")
    lines = PAPER.read_text(encoding="utf-8").splitlines()
    out = {}
    for t in TABLES:
        cap = [i for i, l in enumerate(lines) if l.startswith(t + ".")]
        assert len(cap) == 1, f"{t}: caption line found {len(cap)} times"
        i = cap[0] - 1
        while i >= 0 and not lines[i].strip():
            i -= 1
        rows = []
        while i >= 0 and lines[i].lstrip().startswith("|"):
            rows.insert(0, lines[i]); i -= 1
        assert rows, f"{t}: no table rows above its caption"
        out[t] = dict(rows=rows, caption=lines[cap[0]], text="\n".join(rows + [lines[cap[0]]]))
    return out


def cell_numbers(rows) -> list[float]:
    "The numbers printed in a table's cells: LaTeX spans ($10^{-5}$, $\\ell_2$) and HTML tags dropped, labels skipped."
    out = []
    for r in rows:
        r = re.sub(r"\$[^$]*\$", " ", r)
        r = re.sub(r"<[^>]*>", "", r)
        out += [float(x) for x in NUM.findall(r)]
    return out

def key(x: float) -> float: return round(float(x), 8)

def printed(e) -> list[float]:
    return [e["value"]] + ([e["std"]] if "std" in e else [])


def test_file_shape(data, numbers):
    assert data["source"] == "MULTIFLOW supplementary material (Farina et al., CVPR 2024)"
    assert set(data["notes"]) >= set(TABLES), "a note per table"
    assert {e["table"] for e in numbers} == set(TABLES)
    for e in numbers:
        assert isinstance(e["value"], float) and math.isfinite(e["value"]), e
        assert "std" not in e or isinstance(e["std"], float), e

def test_names_allowed(numbers):
    for e in numbers:
        assert e["model"] in MODELS, e
        assert e["task"] in TASKS, e
        assert e["metric"] in METRICS, e
        assert e["method"] in METHODS, e
    assert {e["task"] for e in numbers if e["table"] == "Table 7"} == {"pruning"}
    assert {e["task"] for e in numbers if e["table"] == "Table 11"} == {"finetuning"}
    assert all("lambda" in e for e in numbers if e["table"] == "Table 10")

def test_sparsities(numbers):
    for e in numbers:
        if e["table"] in NO_SPARSITY:
            assert e["sparsity"] is None, e
        else:
            assert e["sparsity"] in SPARSITIES, e
            assert (e["sparsity"] == 0.0) == (e["method"] == "dense"), e

def test_no_duplicate_keys(numbers):
    dup = [k for k, n in Counter(tuple(e.get(f) for f in KEY) for e in numbers).items() if n > 1]
    assert not dup, dup

def test_values_occur_in_their_table(numbers, blocks):
    for t in TABLES:
        found = Counter(key(x) for x in cell_numbers(blocks[t]["rows"]))
        loose = blocks[t]["text"]
        for e in (e for e in numbers if e["table"] == t):
            for v in printed(e):
                if t == "Table 11":
                    if e["metric"] == "lr":
                        m, ex = f"{v:.0e}".split("e")
                        pw = "10^{%d}" % int(ex)
                        assert (pw if m == "1" else f"{m} \\times {pw}") in loose, e
                    else:
                        assert re.search(r"(?<![\d.])%s(?![\d.])" % re.escape(f"{v:g}"), loose), e
                else:
                    assert found[key(v)] > 0, f"{t}: {v} not printed in the table ({e})"
        if t == "Table 10":
            for lam in {e["lambda"] for e in numbers if e["table"] == t}:
                assert "10^{%d}" % round(math.log10(lam)) in loose or "10^%d" % round(math.log10(lam)) in loose, lam

def test_tables_4_to_10_complete(numbers, blocks):
    "Each table's printed numbers, as a multiset, are exactly the transcribed values and stds (ERR cells hold none)."
    for t in TABLES[:-1]:
        text = Counter(key(x) for x in cell_numbers(blocks[t]["rows"]))
        ours = Counter(key(v) for e in numbers if e["table"] == t for v in printed(e))
        assert ours == text, f"{t}: transcribed-only {dict(ours - text)}, printed-only {dict(text - ours)}"

def test_internal_consistency(numbers):
    "Relations the paper states: Avg. R@1 is the mean of Text/Image R@1 (Table 10); (×k) is runtime / MULTIFLOW's (Table 7)."
    idx = {tuple(e.get(f) for f in KEY): e["value"] for e in numbers}
    for e in numbers:
        if e["table"] == "Table 10" and e["metric"] == "avg_R@1":
            k = lambda m: idx[tuple(m if f == "metric" else e.get(f) for f in KEY)]
            assert abs((k("TR@1") + k("IR@1")) / 2 - e["value"]) <= 0.0051, e
        if e["table"] == "Table 7" and e["metric"] == "speedup":
            run = lambda meth: idx[tuple("prune_s" if f == "metric" else meth if f == "method" else e.get(f) for f in KEY)]
            assert abs(run(e["method"]) / run("multiflow") - e["value"]) <= 0.0051, e
