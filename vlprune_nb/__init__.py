"""Prune vision-language models (MULTIFLOW, UPop) reproducibly, in notebooks

Modules:

- `vlprune_nb.config`: The reproduction defaults live in one file, `settings.ini`; this module reads them, resolves paths, seeds every random generator and picks the device.
- `vlprune_nb.data`: A seeded image–caption world small enough to pretrain on two CPU cores, written in the formats of the real datasets (COCO-Karpathy, BLIP pretraining JSON, VQAv2, NLVR2 as BLIP ships it, image folders), and the readers that take either the world or the real files."""

__version__ = "0.1.0"
