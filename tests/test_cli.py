"""`vlprune` as a user runs it (a separate process, the console script's `main`): prune round trips into folders that
plain `transformers` loads, on the shipped BLIP and on tiny transformers CLIP and ViT checkpoints that carry their own
processor; `vlprune structured` on the shipped ViT; the help of each subcommand; bad arguments."""
import json, math, os, subprocess, sys, tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from vlprune_nb import cli, data, families, structured
from vlprune_nb.masks import load_masks
from vlprune_nb.pruning import prune

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "data" / "world"


def vlprune(*args) -> subprocess.CompletedProcess:
    "Run `vlprune ARGS` in a fresh process (what the console script runs: `sys.exit(main())`), one torch thread."
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", "import sys; from vlprune_nb.cli import main; sys.exit(main())", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def model_class(out: Path):
    "The class config.json's `architectures` names: transformers' own, or one of ours (BLIP's pretraining model)."
    name = json.loads((out / "config.json").read_text())["architectures"][0]
    return getattr(transformers, name, None) or families.MODEL_CLASSES[name]


def check_pruned(out: Path, dense: torch.nn.Module, sparsity: float) -> dict:
    """OUT loads with plain `from_pretrained` of its class; where the masks say pruned its weights are exactly zero, all
    others (pruned weights' kept entries and every other tensor) equal the dense checkpoint's; ⌊s·N⌋ pruned. Returns the masks."""
    pruned = model_class(out).from_pretrained(str(out))
    masks = load_masks(out / "masks.safetensors")
    assert set(masks) == {r.name for r in families.prunable(dense)}
    dp, pp = dict(dense.named_parameters()), dict(pruned.named_parameters())
    assert dp.keys() == pp.keys()
    for name, w in dp.items():
        keep = masks.get(name, torch.ones_like(w, dtype=torch.bool))
        assert torch.equal(pp[name][~keep], torch.zeros_like(w[~keep])), f"{name}: a pruned weight is not zero"
        assert torch.equal(pp[name][keep], w[keep]), f"{name}: a kept weight changed"
    N = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == math.floor(sparsity * N)
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity"]["overall"]["pruned"] == report["prune"]["pruned"] == math.floor(sparsity * N)
    return masks


def same_processor(a, b) -> bool:
    "Two processors preprocess alike: equal settings (sizes, mean/std, image processor) and tokenizers with one vocabulary."
    fields = lambda p: {k: v for k, v in vars(p).items() if k not in ("tokenizer", "image_processor")}
    toks = (a.tokenizer, b.tokenizer)
    return fields(a) == fields(b) and (toks == (None, None) or None not in toks and toks[0].get_vocab() == toks[1].get_vocab())


def test_console_script_and_alias_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vlprune"] == "vlprune_nb.cli:main" and scripts["vlprune-grid"] == "vlprune_nb.experiments:grid_cli"


def test_help_of_each_subcommand():
    top = vlprune("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in ("prune", "structured", "grid"))
    for cmd, options in (("prune", ("--method", "--sparsity", "--calib", "--image-root", "--calib-batches", "--batch-size",
                                    "--seed", "--device", "--option", "--out", "--force")),
                         ("structured", ("--task", "--ratio", "--method", "--data", "--image-root", "--search-steps",
                                         "--retrain-steps", "--out"))):
        r = vlprune(cmd, "--help")
        assert r.returncode == 0 and f"usage: vlprune {cmd}" in r.stdout and all(o in r.stdout for o in options), r.stdout
        assert "(default: 16)" in r.stdout if cmd == "prune" else "(default: upop)" in r.stdout
    grid = vlprune("grid")
    assert grid.returncode == 0 and "usage: vlprune-grid" in grid.stdout and "--families" in grid.stdout


@pytest.mark.parametrize("args, words", [
    (["prune", "blip", "--method", "magic", "--sparsity", "0.5"], ["--method", "invalid choice", "'magic'"]),
    (["prune", "blip", "--method", "omp", "--sparsity", "1.5"], ["--sparsity", "[0, 1)", "'1.5'"]),
    (["prune", "blip", "--method", "multiflow", "--sparsity", "0.5", "--calib", "no/such/ann.json", "--image-root", "data/world"],
     ["--calib", "no/such/ann.json", "does not exist"]),
    (["prune", "blip", "--method", "omp", "--sparsity", "0.5", "--out", "data/checkpoints"], ["--out", "exists", "--force"]),
])
def test_bad_arguments_exit_2_naming_the_argument(args, words, tmp_path):
    if "--out" not in args: args = [*args, "--out", tmp_path / "out"]
    r = vlprune(*args)
    assert r.returncode == 2 and all(w in r.stderr for w in words) and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_prune_shipped_blip_omp(tmp_path):
    r = vlprune("prune", "blip", "--method", "omp", "--sparsity", "0.75", "--out", tmp_path / "blip_omp", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    check_pruned(tmp_path / "blip_omp", families.load("blip"), 0.75)
    assert same_processor(families.load(tmp_path / "blip_omp").processor, families.load("blip").processor), "reloads like its source"


def test_prune_shipped_blip_multiflow_on_the_pretraining_json(tmp_path):
    out, ann = tmp_path / "blip_mf", WORLD / "annotations" / "pretrain.json"
    r = vlprune("prune", "blip", "--method", "multiflow", "--sparsity", "0.9", "--calib", ann, "--image-root", WORLD,
                "--calib-batches", 2, "--batch-size", 8, "--seed", 3, "--out", out)
    assert r.returncode == 0, r.stderr
    dense = families.load("blip")
    masks = check_pruned(out, dense, 0.9)
    # the masks are those of the same records, batches and seed in this process: the command calibrated on the file it was given
    calib = data.calibration_batches(dense, 2, 8, 3, data=data.read_records(ann, WORLD))
    here = prune(dense, "multiflow", 0.9, calib, seed=3).masks
    assert all(torch.equal(masks[n], here[n]) for n in here)
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["calib"] == str(ann) and report["prune"]["calib_batches"] == 2


# tiny transformers checkpoints with a processor of their own (non-default mean/std, a crop), and non-square images

def _tokenizer():
    "A BERT-style WordPiece tokenizer built offline: the world's."
    return data.load_tokenizer(WORLD / "tokenizer")

def _images(root: Path, names, size=(40, 56), seed=0) -> None:
    rs = np.random.RandomState(seed)
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rs.randint(0, 256, (*size, 3), dtype=np.uint8)).save(root / n)

@pytest.fixture
def clip_ckpt(tmp_path) -> tuple[Path, Path, Path]:
    "(checkpoint, pretraining JSON, image root): a random CLIPModel saved with CLIPImageProcessorPil and the tokenizer."
    tok, ck = _tokenizer(), tmp_path / "tiny_clip"
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=24, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(0)
    transformers.CLIPModel(transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(ck)
    transformers.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                       image_mean=[0.3, 0.4, 0.5], image_std=[0.2, 0.25, 0.3]).save_pretrained(ck)
    tok.save_pretrained(ck)
    root = tmp_path / "photos"
    names = [f"img/{i:03d}.jpg" for i in range(8)]
    _images(root, names)
    captions = ["a red square in the top left", "two shapes: a blue circle and a small green ring", "a large yellow cross"]
    data.write_json(tmp_path / "pretrain.json", [{"image": n, "caption": captions[i % 3]} for i, n in enumerate(names)])
    return ck, tmp_path / "pretrain.json", root

@pytest.fixture
def vit_ckpt(tmp_path) -> tuple[Path, Path]:
    "(checkpoint, image folder): a random ViTForImageClassification saved with ViTImageProcessorPil, and a 2-class folder."
    ck = tmp_path / "tiny_vit"
    torch.manual_seed(0)
    transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
        num_labels=2)).save_pretrained(ck)
    transformers.ViTImageProcessorPil(size={"height": 32, "width": 32}, image_mean=[0.6, 0.5, 0.4],
                                      image_std=[0.3, 0.2, 0.1]).save_pretrained(ck)
    folder = tmp_path / "folder"
    _images(folder, [f"train/{c}/{i}.png" for c in ("cat", "dog") for i in range(4)], size=(32, 32), seed=1)
    return ck, folder

def test_checkpoint_processor_is_what_the_pixels_and_ids_get(clip_ckpt, vit_ckpt):
    ck, ann, root = clip_ckpt
    model = families.load(ck)
    records = data.read_records(ann, root)
    (batch,) = data.calibration_batches(model, 1, 4, seed=2, data=records)
    chosen = [records[i] for i in torch.randperm(len(records), generator=torch.Generator().manual_seed(2))[:4].tolist()]
    # the transformers image processor and tokenizer themselves, on the same files (40×56: resized and cropped by CLIP's rule)
    ip = transformers.AutoImageProcessor.from_pretrained(ck, backend="pil")
    want = ip(images=[Image.open(x["image"]) for x in chosen], return_tensors="pt")["pixel_values"]
    assert torch.equal(batch["pixel_values"], want) and want.shape == (4, 3, 32, 32)
    ids = transformers.AutoTokenizer.from_pretrained(ck)([x["caption"] for x in chosen], padding="longest", truncation=True,
                                                       max_length=24, return_tensors="pt")
    assert torch.equal(batch["input_ids"], ids.input_ids) and torch.equal(batch["attention_mask"], ids.attention_mask)
    # ViT: 32×32 images are only rescaled and normalised; by hand with the checkpoint's mean and std
    vck, folder = vit_ckpt
    vit = families.load(vck)
    assert vit.processor.tokenizer is None
    recs = data.read_records(folder)
    (vb,) = data.calibration_batches(vit, 1, 8, data=recs)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0)).tolist()
    x = torch.stack([torch.from_numpy(np.array(Image.open(recs[i]["image"]))).permute(2, 0, 1) for i in order]).double() / 255
    by_hand = (x - torch.tensor([0.6, 0.5, 0.4]).view(1, 3, 1, 1)) / torch.tensor([0.3, 0.2, 0.1]).view(1, 3, 1, 1)
    assert torch.allclose(vb["pixel_values"].double(), by_hand, atol=1e-5)
    assert vb["labels"].tolist() == [recs[i]["label"] for i in order]

def test_prune_tiny_transformers_clip(clip_ckpt, tmp_path):
    ck, ann, root = clip_ckpt
    out = tmp_path / "clip_mf"
    r = vlprune("prune", ck, "--method", "multiflow", "--sparsity", "0.5", "--calib", ann, "--image-root", root,
                "--calib-batches", 2, "--batch-size", 4, "--out", out)
    assert r.returncode == 0, r.stderr
    assert model_class(out) is transformers.CLIPModel
    check_pruned(out, families.load(ck), 0.5)
    assert not (out / "family.json").exists(), "written as transformers writes a checkpoint"
    assert (transformers.AutoImageProcessor.from_pretrained(out, backend="pil").to_dict()
            == transformers.AutoImageProcessor.from_pretrained(ck, backend="pil").to_dict())
    assert transformers.AutoTokenizer.from_pretrained(out)("a red square").input_ids == transformers.AutoTokenizer.from_pretrained(ck)("a red square").input_ids
    assert same_processor(families.load(out).processor, families.load(ck).processor)

def test_prune_tiny_transformers_vit_on_an_image_folder(vit_ckpt, tmp_path):
    ck, folder = vit_ckpt
    out = tmp_path / "vit_snip"
    r = vlprune("prune", ck, "--method", "snip", "--sparsity", "0.6", "--calib", folder, "--calib-batches", 2,
                "--batch-size", 4, "--out", out)
    assert r.returncode == 0, r.stderr
    assert model_class(out) is transformers.ViTForImageClassification
    check_pruned(out, families.load(ck), 0.6)
    assert same_processor(families.load(out).processor, families.load(ck).processor)


def test_structured_shipped_vit(tmp_path):
    out = tmp_path / "vit_upop"
    r = vlprune("structured", "vit", "--task", "classification", "--ratio", 2, "--search-steps", 4, "--retrain-steps", 0,
                "--batch-size", 8, "--out", out)
    assert r.returncode == 0, r.stderr
    small = structured.load_extracted(out)
    torch.set_num_threads(1)
    dense = families.load("vit")
    struct, searched = structured.search(dense, "classification", 2, "upop", steps=4, batch_size=8, seed=0, progress=False)
    saved = json.loads((out / "structure.json").read_text())
    assert {n: m["kept"] for n, m in saved["modules"].items()} == {n: m["kept"] for n, m in struct["modules"].items()}, "the same search"
    assert structured.count_params(small) < structured.count_params(dense)
    x = structured.example_inputs(dense, "classification", batch_size=4)
    with torch.no_grad():
        want = structured.inference_forward(structured.masked(searched, struct), "classification", x)
        got = structured.inference_forward(small, "classification", x)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    report = json.loads((out / "report.json").read_text())
    assert report["accounting"]["params_extracted"] == structured.count_params(small)


# issue 19: a checkpoint of the user's kind, end to end; both commands lay their output out alike and say how to load it

def test_help_says_the_calibration_budget_and_every_data_format():
    prune_help, structured_help = vlprune("prune", "--help").stdout, vlprune("structured", "--help").stdout
    flat = lambda s: " ".join(s.split())
    assert "16 × 32 = 512" in flat(prune_help) and "--calib world" not in flat(prune_help) and "'world'" in flat(prune_help)
    for fmt in ("Karpathy JSON", "caption list", "pretraining JSON", "NLVR2 JSON", "image folder"):
        assert fmt in flat(structured_help), fmt


def test_example_tiny_checkpoint_then_prune_and_structured(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, ROOT / "examples" / "tiny_checkpoint.py", tmp_path / "tiny", "--images", "16"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    paths = json.loads(r.stdout.splitlines()[0])
    ck, ann, images = Path(paths["checkpoint"]), Path(paths["captions"]), Path(paths["images"])
    assert data.detect_format(ann) == "karpathy" and (ck / "preprocessor_config.json").is_file()
    calib = ("--calib", ann, "--image-root", images, "--calib-batches", 2, "--batch-size", 8)
    r = vlprune("prune", ck, "--method", "multiflow", "--sparsity", "0.5", "--out", tmp_path / "pruned")
    assert r.returncode == 2 and "--calib world" in r.stderr, "a checkpoint of the user's is not calibrated on the world silently"
    r = vlprune("prune", ck, "--method", "multiflow", "--sparsity", "0.5", *calib, "--out", tmp_path / "pruned")
    assert r.returncode == 0, r.stderr
    assert model_class(tmp_path / "pruned") is transformers.CLIPModel
    check_pruned(tmp_path / "pruned", families.load(ck), 0.5)
    r = vlprune("structured", ck, "--task", "retrieval", "--ratio", 2, "--data", ann, "--image-root", images,
                "--search-steps", 2, "--retrain-steps", 0, "--batch-size", 8, "--out", tmp_path / "small")
    assert r.returncode == 0, r.stderr
    pruned, small = set(os.listdir(tmp_path / "pruned")), set(os.listdir(tmp_path / "small"))
    shared = {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
              "report.json", "README.txt", "vlprune.json"}
    assert shared <= pruned and shared <= small and "tokenizer" not in small, (pruned, small)
    loaded = structured.load_extracted(tmp_path / "small")
    got, want = loaded.processor, families.load(ck).processor      # (the manifest's JSON gives mean and std back as lists)
    assert (got.image_processor_config == want.image_processor_config and got.max_text_len == want.max_text_len
            and got.tokenizer.get_vocab() == want.tokenizer.get_vocab()), "the extracted model reloads with the source's processor"
    for out, words in ((tmp_path / "pruned", ("CLIPModel.from_pretrained", "AutoImageProcessor", "families.load", "load_masks")),
                       (tmp_path / "small", ("structured.load_extracted", "from_pretrained cannot"))):
        readme = (out / "README.txt").read_text()
        assert all(w in readme for w in words) and str(out) in readme, readme
        assert json.loads((out / "vlprune.json").read_text())["written_by"] in ("vlprune prune", "vlprune structured")
