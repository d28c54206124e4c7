"""Local response normalization across channels (Krizhevsky et al. 2012, section 3.3).

PyTorch's convention, the one minialex computes (``a`` the input, window of ``size`` channels
around c, channels outside [0, C) count as zero):

    b[c] = a[c] / (k + alpha / size * sum_{j=c-size//2}^{c+(size-1)//2} a[j]^2) ^ beta

The same idea is written four ways in the literature; each maps onto this one exactly:

    paper (2012)        b = a / (k + alpha * sum a^2)^beta,    n=5, k=2, alpha=1e-4, beta=0.75
                        -> size=n, alpha=alpha_paper * n                  (``lrn_args_from_paper``)
    Caffe               same as PyTorch (alpha divided by size); bvlc_alexnet: alpha=1e-4, k=1
    TensorFlow          tf.nn.lrn(depth_radius=r, bias, alpha, beta): window 2r+1, alpha not divided
                        -> size=2r+1, alpha=alpha_tf * (2r+1), k=bias      (``lrn_args_from_tensorflow``)

Backward (derived in minialex/backend/numpy_ref.py, next to the kernel):
    grad wrt a[i] = gy[i] * scale[i]^-beta - 2*alpha*beta/size * a[i] * sum_{c: i in window(c)} gy[c]*b[c]/scale[c]
"""

from __future__ import annotations

from minialex import backend
from minialex.tensor import Function


class LocalResponseNorm(Function):
    def forward(self, x, size, alpha, beta, k):
        xp, K = backend.xp_of(x), backend.kernels_for(x)
        x3 = xp.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)  # (N, C, L), L = H*W
        y, scale = xp.empty_like(x3), xp.empty_like(x3)
        K.lrn_forward(x3, size, alpha, beta, k, y, scale)
        self.save(x=x3, y=y, scale=scale)
        self.params, self.x_shape = (size, alpha, beta), x.shape
        return y.reshape(x.shape)

    def backward(self, gy):
        # grad wrt x
        x3, y, scale = self.saved["x"], self.saved["y"], self.saved["scale"]
        size, alpha, beta = self.params
        gx = backend.xp_of(gy).empty_like(x3)  # (N, C, L)
        backend.kernels_for(gy).lrn_backward(x3, y, scale, gy.reshape(x3.shape), size, alpha, beta, gx)
        return gx.reshape(self.x_shape)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """LRN over channels (axis 1) of an (N, C, ...) input, as ``torch.nn.functional.local_response_norm``."""
    return _local_response_norm(input, size, alpha, beta, k, where=f"local_response_norm(size={size!r})")


def _local_response_norm(x, size, alpha, beta, k, where):
    if x.ndim < 3:
        raise ValueError(f"{where}: expected input (N, C, ...) with at least 3 dimensions, got {x.shape}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{where}: size must be a positive int (the number of channels summed), got {size!r}")
    return LocalResponseNorm.apply(x, size=size, alpha=float(alpha), beta=float(beta), k=float(k))


def lrn_args_from_paper(n=5, k=2.0, alpha=1e-4, beta=0.75) -> dict:
    """PyTorch-convention arguments for the paper's formula (alpha not divided by n)."""
    return dict(size=n, alpha=alpha * n, beta=beta, k=k)


def lrn_args_from_tensorflow(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5) -> dict:
    """PyTorch-convention arguments for ``tf.nn.lrn`` (its defaults shown)."""
    size = 2 * depth_radius + 1
    return dict(size=size, alpha=alpha * size, beta=beta, k=bias)
