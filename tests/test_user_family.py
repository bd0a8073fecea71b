"""A family defined here, not in the library, goes through everything the library does with a model.

`TinyNet` is a small image classifier whose names follow no transformers convention (`blocks.N.attn.wq`,
`blocks.N.ffn.up`, an attention module holding its width as `width`), so the base family's name-reading defaults
cannot describe it: its family must answer the hooks (`unit_layer`, `is_unit_input`, `attention_of`,
`scaled_query`, `resize_attention`, `restore_attention`), and the test fails if any part of the library still reads names or classes of its own instead
of asking the family. It is registered after `import vlprune_nb`, so every registry must see it live."""
import re
import pytest, torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from vlprune_nb import data, explore, families, pruning, structured, tasks, upop_runs
from vlprune_nb.families import Family, Prunable, register

NAME = "tinynet_test"

class TinyNetConfig(PretrainedConfig):
    model_type = NAME
    def __init__(self, hidden=32, heads=2, layers=2, image_size=32, patch=8, num_labels=12, **kw):
        super().__init__(num_labels=num_labels, **kw)
        self.hidden, self.heads, self.layers, self.image_size, self.patch = hidden, heads, layers, image_size, patch

class Attention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads, self.width = heads, hidden // heads                 # per-head width, read at run time
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(hidden, hidden) for _ in range(4))
    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (w(x).view(B, N, self.heads, self.width).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        return self.wo(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, self.heads * self.width))

class Block(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.n1, self.n2, self.attn = nn.LayerNorm(hidden), nn.LayerNorm(hidden), Attention(hidden, heads)
        self.ffn = nn.ModuleDict({"up": nn.Linear(hidden, 4 * hidden), "down": nn.Linear(4 * hidden, hidden)})
    def forward(self, x):
        x = x + self.attn(self.n1(x))
        return x + self.ffn["down"](F.gelu(self.ffn["up"](self.n2(x))))

class TinyNet(PreTrainedModel):
    config_class, base_model_prefix, main_input_name = TinyNetConfig, "tinynet", "pixel_values"
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.patches = nn.Conv2d(3, c.hidden, c.patch, c.patch)
        self.blocks = nn.ModuleList(Block(c.hidden, c.heads) for _ in range(c.layers))
        self.head = nn.Linear(c.hidden, c.num_labels)
        self.post_init()
    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv2d)): nn.init.normal_(module.weight, std=0.05); nn.init.zeros_(module.bias)
    def forward(self, pixel_values, labels=None):
        x = self.patches(pixel_values).flatten(2).transpose(1, 2)        # (B, tokens, hidden)
        for b in self.blocks: x = b(x)
        logits = self.head(x.mean(1))
        return ImageClassifierOutput(loss=F.cross_entropy(logits, labels) if labels is not None else None, logits=logits)

class TinyNetFamily(Family):
    name, modalities, tasks, uses_text = NAME, ("vision",), ("classification",), False
    rules = [(r"blocks\.(?P<layer>\d+)\.attn\.w[qkvo]\.weight", "vision", "self_attn"),
             (r"blocks\.(?P<layer>\d+)\.ffn\.(up|down)\.weight", "vision", "mlp")]
    upop_attn_cost = 12
    @classmethod
    def model_classes(cls): return (TinyNet,)
    @classmethod
    def build(cls, tok=None, **kw): return TinyNet(TinyNetConfig(**kw))
    @classmethod
    @torch.no_grad()
    def calibration_forward(cls, model, batch): model(pixel_values=batch["pixel_values"])
    @classmethod
    def pretraining_loss(cls, model, batch, generator=None):
        loss = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
        return {"cls": loss, "loss": loss}
    @classmethod
    def unit_layer(cls, name):
        m = re.match(r"(blocks)\.(\d+)\.", name)
        return (m.group(1), m.group(0)[:-1]) if m else None
    @classmethod
    def is_unit_input(cls, path): return path.endswith((".wq", ".wk", ".wv", ".up"))
    @classmethod
    def attention_of(cls, model, ins):
        path = ins[0].rsplit(".", 1)[0]
        return path, model.get_submodule(path).heads, False
    @classmethod
    def scaled_query(cls, model, path, reference_quirks):      # SDPA divides by √(width): keep the temperature
        return None if reference_quirks else f"{path}.wq"
    @classmethod
    def resize_attention(cls, model, path, heads, kept, reference_quirks):
        model.get_submodule(path).width = kept
        return {"cls": "Attention"}
    @classmethod
    def restore_attention(cls, model, path, entry): model.get_submodule(path).width = entry["kept"]

@pytest.fixture(scope="module")
def model():
    register(TinyNetFamily)
    torch.manual_seed(0)
    yield families.build(NAME)
    del families.FAMILIES[NAME]

def test_every_registry_sees_a_family_registered_after_import(model):
    assert tasks.FAMILY_TASKS[NAME] == ("classification",)
    assert structured.OFFICIAL_ATTN_COST[NAME] == 12 and NAME in upop_runs.STRUCTURED_FAMILIES
    assert families.MODEL_CLASSES["TinyNet"] is TinyNet
    assert families.family_of(model) is TinyNetFamily

def test_a_hook_the_family_lacks_names_the_family_and_the_hook(model):
    with pytest.raises(NotImplementedError, match=f"family '{NAME}' does not define the hook pair_logits"):
        TinyNetFamily.pair_logits(model, None, None, None)

def test_prune_finetune_evaluate(model):
    calib = data.calibration_batches(model, 2, 8)
    masks = pruning.prune(model, "multiflow", 0.5, calib).masks
    names = [r.name for r in families.prunable(model)]
    assert sorted(masks) == sorted(names) and len(names) == 2 * 6
    kept = sum(int(m.sum()) for m in masks.values()); total = sum(m.numel() for m in masks.values())
    assert kept == total - round(0.5 * total)
    tm = tasks.finetune(model, "classification", masks=masks, steps=3, batch_size=8, progress=False)
    assert all(not tm.get_parameter(n).detach()[~m].any() for n, m in masks.items())   # pruned weights stay zero
    before = tasks.evaluate(model, "classification", limit=24, progress=False)
    after = tasks.evaluate(tm, "classification", limit=24, progress=False)
    assert set(after) == set(before) and "top1" in after

def test_structured_search_extract_and_reload(model, tmp_path):
    torch.manual_seed(0)
    st, searched = structured.search(model, "classification", 2, steps=3, interval=1, batch_size=4, progress=False)
    assert {u.name for u in structured.units(model)} == set(st["modules"])
    small = structured.extract(searched, st)
    x = structured.example_inputs(small, "classification", batch_size=3)
    with torch.no_grad(): want = structured.inference_forward(structured.masked(searched, st), "classification", x)
    with torch.no_grad(): got = structured.inference_forward(small, "classification", x)
    assert torch.allclose(got, want, atol=1e-5)
    widths = {e["kept"] for e in small.vlprune_structure["modules"].values() if e["kind"] != "mlp"}
    assert widths and max(widths) < 16                           # the attention widths really shrank
    back = structured.load_extracted(structured.save_extracted(small, tmp_path / "small"))
    with torch.no_grad(): again = structured.inference_forward(back, "classification", x)
    assert torch.equal(again, got)

def test_explorer_masks_tab_on_its_checkpoint(model, tmp_path):
    ckpt = families.save(model, tmp_path / "ckpt")
    tab = explore.MasksTab(source=str(ckpt), method="omp", sparsity=0.5, compare="random", calib_batches=0,
                           cache=explore.MaskCache(), background=False)
    assert tab.error is None, tab.error
    assert abs(tab.state["overall"]["omp"] - 0.5) < 0.01 and set(tab.state["modalities"]["omp"]) == {"vision"}

def test_a_sweep_record_from_its_checkpoint_directory(model, tmp_path):
    from vlprune_nb import experiments
    ckpt = families.save(model, tmp_path / "ckpt")
    cfg = experiments.run_config(str(ckpt), "omp", 0.5, "classification", calib_batches=1, finetune_steps=2, eval_limit=24)
    assert cfg["family"] == NAME and cfg["checkpoint_dir"] == str(ckpt.resolve())
    assert cfg["checkpoint"] == families.weights_sha256(ckpt / "model.safetensors")[:12]
    [record] = experiments.sweep([cfg], out_dir=tmp_path / "store", progress=False)
    path = experiments.record_path(cfg, tmp_path / "store")
    assert record["key"] == path.stem and experiments.check_record(record, path) is None
    assert record["checkpoint_sha256"] == families.weights_sha256(ckpt / "model.safetensors")
    assert record["sparsity"]["overall"] == 0.5 and "top1" in record["metrics"]
    # the same weights in another directory are the same checkpoint: the same key, found in the store
    moved = families.save(model, tmp_path / "elsewhere")
    again = experiments.run_config(str(moved), "omp", 0.5, "classification", calib_batches=1, finetune_steps=2, eval_limit=24)
    assert experiments.run_key(again) == record["key"] and experiments.is_done(again, tmp_path / "store")

def test_a_shipped_configuration_keeps_its_key():
    "Configurations by name carry no checkpoint_dir: their keys are those of the records the shipped store holds."
    from vlprune_nb import experiments
    cfg = experiments.run_config("blip", "multiflow", 0.9, "retrieval")
    assert "checkpoint_dir" not in cfg and experiments.record_path(cfg).is_file()

COARSE = 3                                                   # a task of this file: the world's classes modulo 3

def coarse_loss(tm, items, generator=None):
    "Cross-entropy of the first COARSE logits against label % COARSE."
    coarse_loss.calls += 1
    logits = families.family_of(tm).class_logits(tm, tm.processor.images([x["image"] for x in items]))[:, :COARSE]
    return F.cross_entropy(logits, torch.tensor([x["label"] % COARSE for x in items]))
coarse_loss.calls = 0

def coarse_accuracy(tm, data, progress=True):
    "The share (in %) of records whose arg-max over the first COARSE logits is label % COARSE."
    with torch.no_grad():
        logits = families.family_of(tm).class_logits(tm, tm.processor.images([x["image"] for x in data]))[:, :COARSE]
    right = sum(int(p) == x["label"] % COARSE for p, x in zip(logits.argmax(1), data))
    return {"coarse_acc": round(100 * right / len(data), 2)}

@pytest.fixture
def coarse_task(model, monkeypatch):
    "A task registered from here, served by the family of this file; both taken back afterwards."
    task = tasks.register_task(tasks.Task("coarse_test", "classification", ("train", "test"), coarse_loss, coarse_accuracy,
                                          ("coarse_acc",), uses_text=False, steps=3, lr=1e-3))
    monkeypatch.setattr(TinyNetFamily, "tasks", ("classification", "coarse_test"))
    yield task
    del tasks.TASKS["coarse_test"]

def test_a_task_defined_here_goes_through_the_library(model, coarse_task, tmp_path):
    "Registering a Task and listing it in a family is all a new task needs: data, budget, loss, evaluation, tables, runs."
    from vlprune_nb import cli, experiments, figures
    assert tasks.FAMILY_TASKS[NAME] == ("classification", "coarse_test")
    assert figures.MAIN_METRICS["coarse_test"] == ("coarse_acc",) and "coarse_test" not in cli.TASK_FORMATS
    assert tasks.task_data("coarse_test", "test") == data.world_items("classification", "test")
    masks = pruning.prune(model, "omp", 0.5).masks
    before = coarse_loss.calls
    tm = tasks.finetune(model, "coarse_test", masks=masks, batch_size=8, progress=False)   # the Task's own budget: 3 steps
    assert coarse_loss.calls - before == 3
    assert all(not tm.get_parameter(n).detach()[~m].any() for n, m in masks.items())
    test = tasks.task_data("coarse_test", "test")[:24]
    assert tasks.evaluate(tm, "coarse_test", limit=24, progress=False)["coarse_acc"] == coarse_accuracy(tm, test)["coarse_acc"]
    cfg = experiments.run_config(str(families.save(model, tmp_path / "ckpt")), "omp", 0.5, "coarse_test", eval_limit=24)
    assert cfg["finetune_steps"] == 3 and cfg["finetune_lr"] == 1e-3
    [record] = experiments.sweep([cfg], out_dir=tmp_path / "store", progress=False)
    assert set(record["metrics"]) >= {"coarse_acc", "n"} and record["metrics"]["n"] == 24
    x = structured.example_inputs(model, "coarse_test", batch_size=2)
    assert set(x) == {"pixel_values"} and x["pixel_values"].shape == (2, 3, 32, 32)
