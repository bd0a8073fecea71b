"""The library's Wanda and SparseGPT against an independent implementation written here from the papers (Sun et al.
2024, Algorithm/Eq. 1; Frantar & Alistarh 2023, Algorithm 1), on a tiny transformers `LlamaForCausalLM` with a few
large-activation input channels: the setting both methods were made for. The peer walks the decoder layers as the
reference codes do (inputs of layer ℓ captured once, layer ℓ pruned, its pruned outputs fed to layer ℓ+1), then the
LM head on the final norm of the pruned stack; the library walks the blocks of the generic family in forward order.
The peer keeps the reference codes' running means (Wanda's `scaler_row`, SparseGPT's H = 2XXᵀ/n); it prunes exactly
⌊s·n⌋ per SparseGPT column block (the paper's rule; the reference code's `<= thresh` prunes one more per block,
a difference the library's notebook states). Also OWL and ECoFLaP (first order) against allocations computed here."""
import pytest, torch
from transformers import LlamaConfig, LlamaForCausalLM

from vlprune_nb import families
from vlprune_nb.pruning import prune

SEQ, BATCHES, BATCH = 32, 8, 2
OUTLIERS = (3, 17, 40)                         # input channels made large (×25) by the RMSNorm gains

def _model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=SEQ, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            for norm in (layer.input_layernorm, layer.post_attention_layernorm): norm.weight[list(OUTLIERS)] = 25.0
    # each decoder layer its own block, the head another (the generic family's default would put it with layer 0)
    return families.generic(model, modality_fn=lambda name: "head" if name.startswith("lm_head") else "decoder",
                            loss_fn=lambda m, b: m(**b, labels=b["input_ids"]).loss)

def _calib(seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, 96, (BATCH, SEQ), generator=g)} for _ in range(BATCHES)]

# ---- the peer: per-layer walk, written from the papers ----------------------------------------------------------

def _linears(layer) -> dict:
    return {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}

class _Running:
    "The reference codes' running statistics of one Linear's inputs: Wanda's scaler_row and SparseGPT's H."
    def __init__(self, d):
        self.n, self.row, self.H = 0, torch.zeros(d), torch.zeros(d, d)
    def add(self, mod, inputs, output):
        x = inputs[0]
        b = x.shape[0] if x.dim() == 3 else 1
        x = x.reshape(-1, x.shape[-1]).t().float()                       # (d, tokens)
        self.row *= self.n / (self.n + b); self.H *= self.n / (self.n + b)
        self.n += b
        self.row += torch.norm(x, p=2, dim=1) ** 2 / self.n
        x = (2 / self.n) ** 0.5 * x
        self.H += x @ x.t()

def peer_wanda(W, st, sparsity, nm=None):
    metric = W.abs() * torch.sqrt(st.row)[None, :]
    pruned = torch.zeros_like(W, dtype=torch.bool)
    if nm:
        n, m = nm
        for i in range(0, W.shape[1], m):
            idx = torch.topk(metric[:, i:i + m], m - n, dim=1, largest=False)[1]
            pruned.scatter_(1, i + idx, True)
    else:
        idx = torch.sort(metric, dim=-1, stable=True)[1][:, :int(W.shape[1] * sparsity)]
        pruned.scatter_(1, idx, True)
    return W.masked_fill(pruned, 0), ~pruned

def peer_sparsegpt(W, st, sparsity, nm=None, blocksize=128, percdamp=0.01):
    W, H = W.clone().float(), st.H.clone()
    d = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1; W[:, dead] = 0
    H += percdamp * torch.mean(torch.diag(H)) * torch.eye(d)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    pruned = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, d, blocksize):
        i2 = min(i1 + blocksize, d)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        if nm: M1 = torch.zeros_like(W1, dtype=torch.bool)
        else:
            tmp = W1 ** 2 / torch.diag(Hinv1).reshape(1, -1) ** 2
            k = int(tmp.numel() * sparsity)                               # the paper's ⌊s·n⌋ of the block
            M1 = torch.zeros(tmp.numel(), dtype=torch.bool)
            M1[torch.sort(tmp.flatten(), stable=True)[1][:k]] = True
            M1 = M1.view(tmp.shape)
        for i in range(i2 - i1):
            w, dd = W1[:, i], Hinv1[i, i]
            if nm and i % nm[1] == 0:
                tmp = W1[:, i:i + nm[1]] ** 2 / torch.diag(Hinv1)[i:i + nm[1]].reshape(1, -1) ** 2
                M1.scatter_(1, i + torch.topk(tmp, nm[1] - nm[0], dim=1, largest=False)[1], True)
            q = w.clone(); q[M1[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / dd
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i1:i2], pruned[:, i1:i2] = Q1, M1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W, ~pruned

@torch.no_grad()
def peer_prune(model, calib, rule, sparsity, nm=None) -> tuple[dict, dict]:
    "Prune a copy's decoder layers one by one, then its LM head, with `rule`; returns (masks, new weights)."
    inner = model.model
    captured = []
    def catch(mod, args, kwargs):
        captured.append((args[0] if args else kwargs.pop("hidden_states"), {k: v for k, v in kwargs.items() if k != "hidden_states"}))
        raise StopIteration
    h = inner.layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    for b in calib:
        try: model(**b, use_cache=False)            # as the references: a cache would grow with every layer call
        except StopIteration: pass
    h.remove()
    masks, weights = {}, {}
    def prune_stage(prefix, mods, run):
        stats = {n: _Running(m.in_features) for n, m in mods.items()}
        hs = [m.register_forward_hook(stats[n].add) for n, m in mods.items()]
        run(); [x.remove() for x in hs]
        for n, m in mods.items():
            new, keep = rule(m.weight.detach(), stats[n], sparsity, nm)
            m.weight.copy_(new.to(m.weight.dtype))
            masks[f"{prefix}{n}.weight"], weights[f"{prefix}{n}.weight"] = keep, m.weight.detach().clone()
    hidden = captured
    for li, layer in enumerate(inner.layers):
        prune_stage(f"model.layers.{li}.", _linears(layer), lambda: [layer(x, **kw) for x, kw in hidden])
        hidden = [(layer(x, **kw), kw) for x, kw in hidden]
        hidden = [(x[0] if isinstance(x, tuple) else x, kw) for x, kw in hidden]
    prune_stage("", {"lm_head": model.lm_head}, lambda: [model.lm_head(inner.norm(x)) for x, _ in hidden])
    return masks, weights

# ---- the comparison ---------------------------------------------------------------------------------------------

def _compare(method, rule, nm=None):
    model, calib = _model(), _calib()
    res = prune(model, method, 0.5, calib)
    ref_masks, ref_weights = peer_prune(_model(), calib, rule, 0.5, nm)
    assert set(res) == set(ref_masks)
    mismatch = sum(int((res[n] != ref_masks[n]).sum()) for n in res)
    total = sum(m.numel() for m in res.values())
    got = res.weights if res.weights is not None else {n: dict(model.named_parameters())[n].detach() * res[n] for n in res}
    diff = max(float((got[n] - ref_weights[n]).abs().max()) for n in res)
    print(f"{method}: {mismatch} of {total} mask entries differ, max |ΔW| = {diff:.2e}")
    return mismatch, total, diff

def test_large_activation_channels_are_there():
    model, calib = _model(), _calib()
    seen = {}
    h = model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: seen.setdefault("x", i[0]))
    model(**calib[0]); h.remove()
    norms = seen["x"].reshape(-1, 64).norm(dim=0)
    others = [j for j in range(64) if j not in OUTLIERS]
    assert norms[list(OUTLIERS)].min() > 10 * norms[others].median()

@pytest.mark.parametrize("method,nm", [("wanda", None), ("wanda_2of4", (2, 4))])
def test_wanda_equals_peer(method, nm):
    mismatch, total, diff = _compare(method, peer_wanda, nm)
    assert mismatch == 0 and diff == 0.0                 # the same ranks on the same statistics: masks and weights equal

@pytest.mark.parametrize("method,nm", [("sparsegpt", None), ("sparsegpt_2of4", (2, 4))])
def test_sparsegpt_equals_peer(method, nm):
    mismatch, total, diff = _compare(method, peer_sparsegpt, nm)
    # H is accumulated in another order (Σxxᵀ there, the running mean here): the weights agree to float32 precision.
    # The calibration has more tokens (512) than any layer has inputs (256): with fewer, H is rank-deficient, its
    # dampened inverse amplifies that float noise, and a few near-ties of the N:M choice flip and cascade along rows
    assert mismatch == 0 and diff < 1e-4, (mismatch, total, diff)

def test_both_change_the_outlier_columns_least():
    "Wanda's point: the weights reading the large channels survive where magnitude alone would prune them."
    model, calib = _model(), _calib()
    res = prune(model, "wanda", 0.5, calib)
    q = res["model.layers.0.self_attn.q_proj.weight"]
    assert q[:, list(OUTLIERS)].float().mean() > 0.95

# ---- OWL and ECoFLaP against allocations computed here ------------------------------------------------------------

def _block_inputs(model, calib) -> dict:
    "Mean squared input per channel of every Linear (all tokens), keyed by weight name."
    sums, n, hs = {}, {}, []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            def add(mod, i, o, key=f"{name}.weight"):
                x = i[0].reshape(-1, i[0].shape[-1]).float()
                sums[key] = sums.get(key, 0) + (x ** 2).sum(0); n[key] = n.get(key, 0) + i[0].shape[0]
            hs.append(m.register_forward_hook(add))
    with torch.no_grad():
        for b in calib: model(**b)
    for h in hs: h.remove()
    return {k: sums[k] / n[k] for k in sums}

def _blocks_of(model) -> dict:
    out = {}
    for r in families.prunable(model): out.setdefault((r.modality, r.layer), []).append(r.name)
    return out

def test_owl_allocation_by_hand():
    model, calib = _model(), _calib()
    a, params = _block_inputs(model, calib), dict(model.named_parameters())
    blocks = _blocks_of(model)
    ratio, size = {}, {}
    for key, names in blocks.items():
        metric = torch.cat([(params[n].detach().abs() * a[n].sqrt()).reshape(-1) for n in names])
        ratio[key] = float((metric > 5 * metric.mean()).float().mean()) * 100
        size[key] = sum(params[n].numel() for n in names)
    # OWL: densities (r − min)/(max − min)·2λ, centred on 1 − s (here weighted by the blocks' sizes, which differ)
    r = torch.tensor([ratio[k] for k in blocks], dtype=torch.float64)
    n = torch.tensor([size[k] for k in blocks], dtype=torch.float64)
    d = (r - r.min()) / (r.max() - r.min()) * 0.16
    density = d - (d * n).sum() / n.sum() + 0.5
    want = {k: float((1 - density[i]) * size[k]) for i, k in enumerate(blocks)}
    res = prune(model, "wanda_owl", 0.5, calib)
    got = {k: sum(int((~res[nm]).sum()) for nm in names) for k, names in blocks.items()}
    assert sum(got.values()) == sum(size.values()) // 2
    assert all(abs(got[k] - want[k]) <= 1 for k in blocks), (got, want)
    assert len(set(round(v / size[k], 3) for k, v in got.items())) > 1       # not uniform: the outliers moved it

def test_ecoflap_first_order_allocation_by_hand():
    model, calib = _model(), _calib()
    params, blocks = dict(model.named_parameters()), _blocks_of(model)
    names = [n for ns in blocks.values() for n in ns]
    grads = {n: torch.zeros_like(params[n]) for n in names}
    for b in calib:                                      # the generic family's loss: the model's own (causal LM) loss
        model.zero_grad()
        model(**b, labels=b["input_ids"]).loss.backward()
        for n in names: grads[n] += params[n].grad.abs()
    model.zero_grad()
    imp = {k: sum(float((params[n].detach().abs() * grads[n]).sum()) / len(calib) for n in ns) for k, ns in blocks.items()}
    size = {k: sum(params[n].numel() for n in ns) for k, ns in blocks.items()}
    keep_total, max_s = sum(size.values()) // 2, 0.6
    # the reference's loop: floors ⌈n(1 − max_s)⌉, then the rest in proportion to importance, rounded up, capped
    keep = {k: -(-size[k] * 4 // 10) for k in blocks}
    score = dict(imp)
    while sum(keep.values()) < keep_total:
        rest, tot = keep_total - sum(keep.values()), sum(score.values())
        for k in blocks: keep[k] = min(size[k], keep[k] + -int(-(score[k] / tot * rest) // 1))
        for k in blocks:
            if keep[k] >= size[k]: score[k] = 0.0
    over = sum(keep.values()) - keep_total
    for k in sorted(blocks, key=lambda k: -keep[k]):
        take = min(over, keep[k] - (-(-size[k] * 4 // 10))); keep[k] -= take; over -= take
    res = prune(model, "ecoflap", 0.5, calib, order="first")
    got = {k: sum(int(res[nm].sum()) for nm in ns) for k, ns in blocks.items()}
    assert got == keep, (got, keep)

def test_ecoflap_zeroth_order_respects_its_cap():
    model, calib = _model(), _calib()
    res = prune(model, "ecoflap", 0.5, calib, max_sparsity=0.55)
    blocks = _blocks_of(model)
    for ns in blocks.values():
        n = sum(res[x].numel() for x in ns)
        assert sum(int((~res[x]).sum()) for x in ns) <= 0.55 * n + 1
    assert res.report["pruned"] == res.report["prunable"] // 2
