"""PCA: fit, projection, reconstruction and text projection agree with each other."""

import pytest
import torch

from lsegrt.model.layers import l2_normalize
from lsegrt.pipeline.pca import Covariance, load_basis, project, project_text, reconstruct


def _features(seed=0, b=3, c=16, h=5, w=7):
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(b, 4, h, w, generator=g)
    mix = torch.randn(c, 4, generator=g)
    f = torch.einsum("bkhw,ck->bchw", low, mix) + 0.05 * torch.randn(b, c, h, w, generator=g)
    return l2_normalize(f, dim=1)


def test_fit_matches_direct_covariance():
    f = _features()
    cov = Covariance(16, "cpu")
    cov.add(f[:1])
    cov.add(f[1:])  # pairwise updates == one pass over every pixel
    x = f.permute(0, 2, 3, 1).reshape(-1, 16).double()
    direct = torch.cov(x.T, correction=0)
    basis = cov.fit(16)
    assert torch.allclose(cov.mean, x.mean(0), atol=1e-12)
    assert torch.allclose(cov.scatter / cov.n, direct, atol=1e-12)
    assert torch.allclose(basis.explained_variance.double(), torch.linalg.eigvalsh(direct).flip(0).float().double(),
                          atol=1e-6)
    assert torch.allclose(basis.components @ basis.components.T, torch.eye(16), atol=1e-5)


def test_round_trip_and_text_projection(tmp_path):
    f = _features()
    cov = Covariance(16, "cpu")
    cov.add(f)
    full = cov.fit(16)
    assert torch.allclose(reconstruct(project(f, full), full), f, atol=1e-5)  # K = C: exact
    errors = [float((reconstruct(project(f, full.truncate(k)), full.truncate(k)) - f).pow(2).mean())
              for k in (1, 2, 4, 8)]
    assert errors == sorted(errors, reverse=True) and errors[2] < 0.01 * errors[0]  # 4 underlying factors
    basis = full.truncate(4)
    text = l2_normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    y = project(f, basis)
    weights, bias = project_text(text, basis)
    via_text = torch.einsum("bkhw,nk->bnhw", y, weights) + bias.view(1, -1, 1, 1)
    via_features = torch.einsum("bchw,nc->bnhw", reconstruct(y, basis), text)
    assert torch.allclose(via_text, via_features, atol=1e-5)
    # numpy in, numpy out; save/load keeps the basis
    basis.save(tmp_path / "b.safetensors")
    again = load_basis(tmp_path / "b.safetensors")
    assert torch.equal(again.components, basis.components) and again.total_variance == pytest.approx(basis.total_variance)
    w_np, b_np = project_text(text.numpy(), again)
    assert w_np.shape == (3, 4) and abs(w_np - weights.numpy()).max() < 1e-6
    assert reconstruct(y[0].numpy(), again).shape == (16, 5, 7)


def test_deterministic_signs():
    f = _features()
    a, b = Covariance(16, "cpu"), Covariance(16, "cpu")
    a.add(f)
    b.add(f.flip(0))  # same pixels, another order
    ca, cb = a.fit(4).components, b.fit(4).components
    assert torch.allclose(ca, cb, atol=1e-5)
    assert (ca.gather(1, ca.abs().argmax(1, keepdim=True)) > 0).all()
