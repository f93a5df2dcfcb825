# Reproduces docs/ACCURACY.md section 5 (rotation experiment, not a feature): reads an f32 lowbit
# manifest (lowbit convert GGUF DIR --bits 32), folds the norms, rotates the residual stream (Q) and
# each value head (R2), unties the head, and writes an HF directory for lowbit convert.
# Usage: python scripts/rotate_residual.py F32_DIR OUT_DIR SEED {had|orth}
import json, sys, os, numpy as np
from safetensors.numpy import save_file
src, out, seed, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
m = json.load(open(f'{src}/manifest.json')); a = m['architecture']
raw = np.memmap(f'{src}/weights.bin', dtype=np.uint8, mode='r')
W = {t['name']: np.frombuffer(raw[t['offset']:t['offset']+t['bytes']], dtype=np.float32).reshape(t['shape']).astype(np.float64) for t in m['tensors']}
d, hd, L = a['dim'], a['head_dim'], a['n_layers']
rng = np.random.default_rng(seed)
def rand_orth(n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))
def walsh(n):
    h = np.ones((1, 1))
    while h.shape[0] < n: h = np.block([[h, h], [h, -h]])
    return h
def paley12():
    q = 11; sq = {(i*i) % q for i in range(1, q)}
    chi = lambda x: 0 if x % q == 0 else (1 if x % q in sq else -1)
    Qm = np.array([[chi(j - i) for j in range(q)] for i in range(q)], float)
    S = np.zeros((12, 12)); S[0, 1:] = 1; S[1:, 0] = -1; S[1:, 1:] = Qm
    return S + np.eye(12)
def had(n):
    if n & (n - 1) == 0: h = walsh(n)
    elif n % 12 == 0 and (n // 12) & (n // 12 - 1) == 0: h = np.kron(paley12(), walsh(n // 12))
    elif n % 144 == 0 and (n // 144) & (n // 144 - 1) == 0: h = np.kron(np.kron(paley12(), paley12()), walsh(n // 144))
    else: raise SystemExit(f'no hadamard {n}')
    assert np.allclose(h @ h.T, n * np.eye(n))
    return h * rng.choice([-1.0, 1.0], n)[None, :] / np.sqrt(n)  # random signs on the columns
R = rand_orth if kind == 'orth' else had
Q = R(d); R2 = R(hd)
E = W['model.embed_tokens.weight']; g = W['model.norm.weight']
H = W.get('lm_head.weight', E)
O = {}
O['model.embed_tokens.weight'] = E @ Q
O['lm_head.weight'] = (H * g[None, :]) @ Q
O['model.norm.weight'] = np.ones(d)
for i in range(L):
    p = f'model.layers.{i}.'
    g1 = W[p+'input_layernorm.weight']; g2 = W[p+'post_attention_layernorm.weight']
    for n in ('q', 'k', 'v'):
        w = (W[p+f'self_attn.{n}_proj.weight'] * g1[None, :]) @ Q
        if n == 'v':  # rows grouped by head: R2^T per head
            w = np.einsum('ji,hjc->hic', R2, w.reshape(-1, hd, d)).reshape(-1, d)
        O[p+f'self_attn.{n}_proj.weight'] = w
    wo = W[p+'self_attn.o_proj.weight']  # [d, nh*hd]; input per head rotated by R2
    wo = np.einsum('rhj,ji->rhi', wo.reshape(d, -1, hd), R2).reshape(d, -1)
    O[p+'self_attn.o_proj.weight'] = Q.T @ wo
    for n in ('gate', 'up'):
        O[p+f'mlp.{n}_proj.weight'] = (W[p+f'mlp.{n}_proj.weight'] * g2[None, :]) @ Q
    O[p+'mlp.down_proj.weight'] = Q.T @ W[p+'mlp.down_proj.weight']
    O[p+'input_layernorm.weight'] = np.ones(d); O[p+'post_attention_layernorm.weight'] = np.ones(d)
os.makedirs(out, exist_ok=True)
save_file({k: np.ascontiguousarray(v.astype(np.float32)) for k, v in O.items()}, f'{out}/model.safetensors')
cfg = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../shared/models/configs/smollm2-135m/config.json')))
cfg.update(tie_word_embeddings=False, bos_token_id=a['bos_id'], eos_token_id=a['eos_ids'][0])
json.dump(cfg, open(f'{out}/config.json', 'w'), indent=1)
for f in m['tokenizer']['files']: open(f'{out}/{f}', 'w').write(open(f'{src}/{f}').read())
