"""Every pruning method and the structured search on transformers' real classes (tiny, randomly initialised, saved
with `save_pretrained` and loaded back with `families.load`, as a user's checkpoint would be) and on the project's
own BLIP and XVLM. A method works on a class when it prunes exactly its share of the class's prunable weights (an N:M method in its
pattern; a weight-changing one with its pruned weights zero) and
the pruned model still runs its task; the structured search works when the extracted model reloads and computes
what the searched model computes with the ζ of its pruned entries at zero."""
import copy
import pytest, torch
from transformers import (BlipConfig, BlipForImageTextRetrieval, BlipForConditionalGeneration, BlipForQuestionAnswering,
                          CLIPModel, ViTConfig, ViTForImageClassification, DeiTConfig, DeiTForImageClassification)

from vlprune_nb import families, pruning, structured, tasks
from vlprune_nb.data import calibration_batches
from vlprune_nb.masks import is_nm

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)

def _blip_config(tok):
    "A tiny transformers BlipConfig with no `enc_token_id`: as a checkpoint from the hub has it."
    ids = families._text_ids(tok)
    return BlipConfig(text_config=dict(**TINY, max_position_embeddings=40, encoder_hidden_size=32, **ids),
                      vision_config=dict(**TINY, image_size=32, patch_size=8), image_text_hidden_size=16)

def _vision_config(cls):
    return cls(**TINY, image_size=32, patch_size=8, num_labels=12)

def _make(name, tok):
    "A tiny model of class `name`, as a user would construct it (transformers' classes, or the project's own families)."
    if name == "BlipForImageTextRetrieval": return BlipForImageTextRetrieval(_blip_config(tok))
    if name == "BlipForConditionalGeneration": return BlipForConditionalGeneration(_blip_config(tok))
    if name == "BlipForQuestionAnswering": return BlipForQuestionAnswering(_blip_config(tok))
    if name == "CLIPModel": return families.ClipFamily.build(tok, hidden=32, layers=1, heads=2, embed=16)
    if name == "ViTForImageClassification": return ViTForImageClassification(_vision_config(ViTConfig))
    if name == "DeiTForImageClassification": return DeiTForImageClassification(_vision_config(DeiTConfig))
    if name == "blip": return families.build("blip", layers=1, hidden=32, heads=2)
    if name == "xvlm": return families.build("xvlm", hidden=32, heads=2, text_layers=1, fusion_layers=1, vision_layers=1)
    raise KeyError(name)

# the class, the task the pruned model is checked on, the task of the structured search
CLASSES = {"BlipForImageTextRetrieval": ("retrieval", "retrieval"), "BlipForConditionalGeneration": ("captioning", "captioning"),
           "BlipForQuestionAnswering": ("vqa", "vqa"), "CLIPModel": ("retrieval", "retrieval"),
           "ViTForImageClassification": ("classification", "classification"),
           "DeiTForImageClassification": ("classification", "classification"), "blip": ("retrieval", "nlvr"),
           "xvlm": ("captioning", "retrieval")}

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    "Each class saved as a checkpoint directory and loaded back with `families.load`, with 2 calibration batches of 4."
    torch.manual_seed(0)
    tok, out = families.world_tokenizer(), {}
    for name in CLASSES:
        d = tmp_path_factory.mktemp(name)
        m = _make(name, tok)
        if name in families.FAMILIES: families.save(m, d)
        else:
            m.save_pretrained(d)
            if families.family_of(m).uses_text: tok.save_pretrained(d)
        model = families.load(d)
        out[name] = (model, calibration_batches(model, 2, 4, seed=1))
    return out

@pytest.mark.parametrize("name", CLASSES)
def test_loads_as_its_own_class_and_family(checkpoints, name):
    model, _ = checkpoints[name]
    assert type(model).__name__ == (name if name not in families.FAMILIES else type(_make(name, families.world_tokenizer())).__name__)
    recs = families.prunable(model)
    kinds = {(r.modality, r.kind) for r in recs}
    assert ("vision", "mlp") in kinds and ("vision", "self_attn") in kinds, kinds
    if name == "DeiTForImageClassification": assert families.family_of(model).name == "deit"
    assert not any("classifier" in r.name or "head" in r.name for r in recs), "heads are never prunable"

@pytest.mark.parametrize("method", list(pruning.METHODS))
@pytest.mark.parametrize("name", CLASSES)
def test_every_method_on_every_class(checkpoints, name, method):
    model, calib = checkpoints[name]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = pruning.prune(model, method, 0.5, calib, seed=0)
    params = dict(model.named_parameters())
    n = sum(m.numel() for m in res.values())
    pruned = sum(int((~m).sum()) for m in res.values())
    assert set(res) == {r.name for r in families.prunable(model)}
    if method.startswith("chita"): assert 0 < pruned <= n // 2, (pruned, n)        # CHITA may keep fewer: never more
    else: assert pruned == n // 2, (method, pruned, n)
    assert all(res[k].shape == params[k].shape for k in res)
    pattern = getattr(pruning.METHODS[method].allocation, "pattern", None)          # N:M methods (field chapter)
    if pattern: assert all(is_nm(m, *pattern) for m in res.values()), method
    if res.weights is not None: assert all((res.weights[k][~m] == 0).all() for k, m in res.items())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "prune leaves the model unchanged"

@pytest.mark.parametrize("name", CLASSES)
def test_pruned_model_runs_its_task(checkpoints, name):
    "MULTIFLOW's masks carried into the task model, pruned weights held at zero through fine-tuning, then evaluated."
    model, calib = checkpoints[name]
    task = CLASSES[name][0]
    masks = dict(pruning.prune(model, "multiflow", 0.5, calib))
    tm = tasks.finetune(model, task, masks=masks, steps=2, batch_size=4, progress=False)
    params = dict(tm.named_parameters())
    assert tm.masks and all((params[k][~m] == 0).all() for k, m in tm.masks.items())
    assert tasks.evaluate(tm, task, limit=4, progress=False)["n"] == 4

@pytest.mark.parametrize("method", structured.SEARCH_METHODS)
@pytest.mark.parametrize("name", CLASSES)
def test_structured_search_extract_reload(checkpoints, tmp_path, name, method):
    model, _ = checkpoints[name]
    task = CLASSES[name][1]
    structure, searched = structured.search(model, task, 2, method, steps=2, interval=1, batch_size=4, progress=False)
    small = structured.extract(searched, structure)
    assert structured.count_params(small) < structured.count_params(searched)
    back = structured.load_extracted(structured.save_extracted(small, tmp_path / "small"))
    x = structured.example_inputs(back, task, batch_size=2)
    ref = copy.deepcopy(searched)                          # the searched model, ζ of every pruned entry set to 0
    with torch.no_grad():
        for unit, z in ref.vlprune_zeta.items():
            dropped = torch.ones(len(z), dtype=torch.bool); dropped[structure["modules"][unit]["kept"]] = False
            z[dropped] = 0
        want = structured.inference_forward(ref, task, x)
        got = structured.inference_forward(back, task, x)
    want, got = (want if isinstance(want, tuple) else (want,)), (got if isinstance(got, tuple) else (got,))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(want, got)), name

def test_nlvr_model_says_why_it_cannot_be_pruned_with_gradients(checkpoints):
    model, calib = checkpoints["blip"]
    nlvr = tasks.task_model(model, "nlvr")
    with pytest.raises(ValueError, match="image pairs"): pruning.prune(nlvr, "snip", 0.5, calib)
