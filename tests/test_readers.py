"""The readers take the real datasets' files (COCO/Flickr30k Karpathy, BLIP's JSON, VQAv2, NLVR2): small files
written here in those formats, with JPEG images under a COCO-like root."""
import json
import numpy as np
import pytest
from PIL import Image

from vlprune_nb.data import read_karpathy, read_pretrain, read_vqa, read_nlvr, read_image_folder, load_image

def jpg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 48, 3), colour, np.uint8)).save(path)

@pytest.fixture
def coco(tmp_path):
    "A COCO-like image root with three val2014 images and a Karpathy file (train/restval/test)."
    for i, c in [(1, (255, 0, 0)), (2, (0, 255, 0)), (3, (0, 0, 255))]:
        jpg(tmp_path / "val2014" / f"COCO_val2014_{i:012d}.jpg", c)
    images = [{"filepath": "val2014", "filename": f"COCO_val2014_{i:012d}.jpg", "imgid": i - 1, "cocoid": i, "split": s,
               "sentences": [{"raw": f"photo {i} caption {k}", "tokens": ["photo"], "imgid": i - 1, "sentid": k} for k in range(5)],
               "sentids": list(range(5))} for i, s in [(1, "train"), (2, "restval"), (3, "test")]]
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    return tmp_path

def test_karpathy_splits_and_restval(coco):
    train = read_karpathy(coco / "dataset_coco.json", "train", coco)
    test = read_karpathy(coco / "dataset_coco.json", "test", coco)
    assert [x["image_id"] for x in train] == [1, 2]            # Karpathy's restval belongs to training
    assert [x["image_id"] for x in test] == [3] and len(test[0]["captions"]) == 5
    assert load_image(test[0]["image"], 32).shape == (3, 32, 32)  # JPEG of another size, resized
    with pytest.raises(ValueError, match="unknown split 'dev'"): read_karpathy(coco / "dataset_coco.json", "dev", coco)

def test_blip_caption_lists(coco):
    (coco / "coco_karpathy_test.json").write_text(json.dumps(
        [{"image": "val2014/COCO_val2014_000000000003.jpg", "caption": ["a", "b"]}]))
    (coco / "pretrain.json").write_text(json.dumps([{"image": "val2014/COCO_val2014_000000000001.jpg", "caption": "red"}]))
    assert read_karpathy(coco / "coco_karpathy_test.json", "test", coco)[0]["captions"] == ["a", "b"]
    assert read_pretrain(coco / "pretrain.json", coco)[0]["image"].is_file()

def test_vqa_v2(coco):
    (coco / "q.json").write_text(json.dumps({"questions": [{"image_id": 3, "question": "what colour?", "question_id": 30}]}))
    (coco / "a.json").write_text(json.dumps({"annotations": [{"question_id": 30, "image_id": 3, "answer_type": "other",
        "multiple_choice_answer": "blue", "answers": [{"answer": "blue", "answer_id": k + 1} for k in range(10)]}]}))
    (x,) = read_vqa(coco / "q.json", coco / "a.json", coco, "val2014/COCO_val2014_{image_id:012d}.jpg")
    assert x["image"].is_file() and x["answers"] == ["blue"] * 10 and x["answer"] == "blue"
    (coco / "a_missing.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="no annotation for question_id 30"):
        read_vqa(coco / "q.json", coco / "a_missing.json", coco, "{image_id}.jpg")

def test_nlvr2_as_blip_ships_it(coco):
    (coco / "nlvr_dev.json").write_text(json.dumps([{"images": ["val2014/COCO_val2014_000000000001.jpg",
        "val2014/COCO_val2014_000000000002.jpg"], "sentence": "both are red", "label": "False"}]))
    (x,) = read_nlvr(coco / "nlvr_dev.json", coco)
    assert x["label"] is False and all(p.is_file() for p in x["images"])

def test_image_folder(tmp_path):
    jpg(tmp_path / "val" / "dog" / "a.jpg", (1, 2, 3)); jpg(tmp_path / "val" / "cat" / "b.JPEG", (3, 2, 1))
    items, classes = read_image_folder(tmp_path, "val")
    assert classes == ["cat", "dog"] and sorted(x["label"] for x in items) == [0, 1]

def test_bad_input_names_the_path(coco, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"): read_karpathy(coco / "nope.json", "test", coco)
    with pytest.raises(FileNotFoundError, match="image root not found: .*missing_root"):
        read_karpathy(coco / "dataset_coco.json", "test", tmp_path / "missing_root")
    (coco / "broken.json").write_text('{"images": [\n  {"split": }]}')
    with pytest.raises(ValueError, match=r"broken.json: malformed JSON at line 2, column 13"):
        read_karpathy(coco / "broken.json", "test", coco)
    with pytest.raises(FileNotFoundError, match="COCO_val2014_000000000009.jpg"):
        load_image(coco / "val2014" / "COCO_val2014_000000000009.jpg", 32)

def test_evaluate_on_real_format_files(coco):
    "A user's Karpathy test file goes straight into `evaluate` (tiny untrained blip, so only the plumbing is checked)."
    from vlprune_nb import families, tasks
    model = families.build("blip", layers=1, hidden=32, embed=16)
    data = read_karpathy(coco / "dataset_coco.json", "train", coco)
    out = tasks.evaluate(model, "retrieval", data=data, progress=False)
    assert out["n"] == 2 and 0 <= out["TR@1"] <= 100 and out["TR@10"] == 100.0   # 2 images: both in any top 10
