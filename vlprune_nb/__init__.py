"""Prune vision-language models (MULTIFLOW, UPop) reproducibly, in notebooks

Modules:

- `vlprune_nb.cli`: `vlprune prune`, `vlprune structured` and `vlprune grid`: one checkpoint in, one pruned checkpoint out, on your own calibration or task data.
- `vlprune_nb.config`: The reproduction defaults live in one file, `settings.ini`; this module reads them, resolves paths, seeds every random generator and picks the device.
- `vlprune_nb.data`: A seeded image–caption world small enough to pretrain on two CPU cores, written in the formats of the real datasets (COCO-Karpathy, BLIP pretraining JSON, VQAv2, NLVR2 as BLIP ships it, image folders), and the readers that take either the world or the real files.
- `vlprune_nb.deploy`: Pruned weights written in the compressed-tensors format (the one llm-compressor writes and vLLM reads): a bitmask for unstructured sparsity, its 2:4 form for 2:4, with a recipe saying how the checkpoint was pruned.
- `vlprune_nb.experiments`: One pruning run is a configuration → a result record (JSON) in `data/results/`. Sweeps are lists of configurations; a configuration whose record exists is never recomputed, so a sweep can be interrupted and resumed without losing finished runs.
- `vlprune_nb.explore`: What a method does before any fine-tuning: where the sparsity goes, which neurons die, how two methods' masks differ, what a structured search keeps; the records of the results store side by side. The widgets of `nbs/explore.ipynb` (in JupyterLab, or as a page: `voila nbs/explore.ipynb`) are built here.
- `vlprune_nb.families`: A family adapts one architecture to everything else in the library: how to build it (a tiny default or a real checkpoint), which weights are prunable and to which modality, layer and kind each belongs, which weights are shared, the calibration forward, and the pretraining loss.
- `vlprune_nb.field`: Wanda and SparseGPT, the OWL and ECoFLaP layer-wise sparsities, N:M patterns for every score: the baselines a VLM pruning paper reports today, on every family the library adapts.
- `vlprune_nb.figures`: Figures drawn from result records and masks: the per-run figure of the papermill job, and the papers' figures regenerated from the results store.
- `vlprune_nb.masks`: A mask is a plain mapping from parameter name (as in `model.named_parameters()`) to a bool tensor of the weight's shape, True = kept. This module applies masks so that pruned weights stay exactly zero through fine-tuning, and carries masks from a pretrained model to the task models built from it.
- `vlprune_nb.maturity`: How far a pretrained checkpoint is from a mature pretrained model: are its losses converged, have its weights left their initialisation, do its spectra and activations look like those of real pretrained transformers?
- `vlprune_nb.multiflow_runs`: The sweep behind `nbs/paper_multiflow.ipynb`: the task-agnostic benchmark on XVLM and BLIP, seeds for the noise, the score ablations, the unimodal ViT, the calibration-set size and the pruning runtimes; the tables that put the paper's numbers beside ours, the claims table and the figures.
- `vlprune_nb.pretrain`: The papers prune models pretrained on millions of images. Here each family is pretrained on the generated world's pretraining split, on the CPU, and its dense checkpoint is shipped in `data/checkpoints/<family>/`.
- `vlprune_nb.pruning`: Unstructured, task-agnostic pruning: a score for every prunable weight and an allocation that turns scores into masks at an exact sparsity. MULTIFLOW and every baseline of its paper (random, OMP, LocalMP, layer-wise L2, LAMP, SNIP, IterSNIP, CHITA, CHITA++, TAMT), on any model a family adapts.
- `vlprune_nb.structured`: UPop's unified and progressive search of trainable masks ζ over attention head dimensions and MLP hidden units, the two non-progressive baselines, extraction of a smaller dense model, its save/reload, and parameter, FLOP and latency accounting.
- `vlprune_nb.tasks`: Every downstream task of the two papers on the generated world (or on real annotation files): image–text retrieval, captioning, VQA, NLVR and classification. `finetune` takes masks and keeps pruned weights at zero.
- `vlprune_nb.train`: One optimisation loop for pretraining, fine-tuning, the structured search and retraining, on any device and on several processes (`accelerate launch`): AdamW groups, the learning-rate schedule, clipping, the step, a per-step hook and a progress bar.
- `vlprune_nb.upop_runs`: One structured run is a configuration → search, extract, measure, retrain, evaluate → a result record (JSON) in the same `data/results/` store as the unstructured runs, with its structure beside it in `structures/`. Sweeps are resumable; `upop_grid` lists the UPop paper's experiments on the embedded world."""

__version__ = "0.1.0"

from . import field as _field          # registers Wanda, SparseGPT, OWL, ECoFLaP and N:M in pruning.METHODS
