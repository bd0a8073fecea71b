"""Make a tiny, randomly initialised transformers CLIP checkpoint and a small calibration set in a real format, to try
`vlprune prune` on a checkpoint of your own kind in a minute:

    python examples/tiny_checkpoint.py tiny                 # writes tiny/checkpoint, tiny/images, tiny/captions.json
    vlprune prune tiny/checkpoint --method multiflow --sparsity 0.5 \\
        --calib tiny/captions.json --image-root tiny/images --calib-batches 2 --batch-size 8 --out tiny/pruned
    python -c "from transformers import CLIPModel; print(CLIPModel.from_pretrained('tiny/pruned'))"

The checkpoint is what `CLIPModel.save_pretrained` writes, with its image processor (preprocessor_config.json) and
tokenizer files beside it, as a checkpoint from the Hub has them; the captions are a Karpathy split file (the COCO
captions format BLIP and MULTIFLOW read), its images PNG files. Nothing is downloaded: the tokenizer is a WordPiece
vocabulary of the captions' words, built here. Replace the checkpoint and the captions with yours.
"""
import argparse, json, random
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle", "cross")


def tokenizer(words):
    "A BERT-style WordPiece tokenizer (lower case) whose vocabulary is the special tokens and `words`."
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words))])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=32)


def picture(colour: str, shape: str, size: int, rng: random.Random) -> Image.Image:
    "A `size`×`size` picture of one coloured shape on a grey ground, at a random place."
    a = np.full((size, size, 3), 128, np.uint8)
    r, cx, cy = size // 5, rng.randrange(size // 4, 3 * size // 4), rng.randrange(size // 4, 3 * size // 4)
    yy, xx = np.mgrid[:size, :size]
    inside = {"square": (abs(xx - cx) <= r) & (abs(yy - cy) <= r), "circle": (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r,
              "cross": ((abs(xx - cx) <= r // 3) & (abs(yy - cy) <= r)) | ((abs(yy - cy) <= r // 3) & (abs(xx - cx) <= r))}[shape]
    a[inside] = COLOURS[colour]
    return Image.fromarray(a)


def make(out: Path, n_images: int = 16, image_size: int = 48, seed: int = 0) -> dict:
    "Write out/checkpoint (a tiny random CLIP), out/images/*.png and out/captions.json (Karpathy format); returns their paths."
    import torch, transformers
    rng = random.Random(seed)
    out = Path(out); (out / "images").mkdir(parents=True, exist_ok=True)
    entries, words = [], {"a", "on", "grey", "picture", "of", "shape", *COLOURS, *SHAPES}
    for i in range(n_images):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        picture(colour, shape, image_size, rng).save(out / "images" / f"{i:04d}.png")
        sentences = [f"a {colour} {shape}", f"a picture of a {colour} {shape} on grey"]
        entries.append({"filename": f"{i:04d}.png", "imgid": i, "split": "train",
                        "sentences": [{"raw": s, "tokens": s.split()} for s in sentences]})
    (out / "captions.json").write_text(json.dumps({"images": entries, "dataset": "tiny"}, indent=1))
    tok = tokenizer(words)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=32, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    ck = out / "checkpoint"
    transformers.CLIPModel(transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(ck)
    getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(ck)
    tok.save_pretrained(ck)
    return {"checkpoint": ck, "captions": out / "captions.json", "images": out / "images"}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out", help="folder to write (checkpoint/, images/, captions.json)")
    p.add_argument("--images", type=int, default=16, help="images in the calibration set (two captions each)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the pictures")
    a = p.parse_args()
    paths = make(Path(a.out), a.images, seed=a.seed)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    print(f"now: vlprune prune {paths['checkpoint']} --method multiflow --sparsity 0.5 --calib {paths['captions']} "
          f"--image-root {paths['images']} --calib-batches 2 --batch-size 8 --out {Path(a.out) / 'pruned'}")
