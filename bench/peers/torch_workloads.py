"""The benchmark workloads in PyTorch (eager; torch.func for jvp and hessian)."""
import sys

import torch
from torch.func import grad, hessian, jvp, vmap

from common import fast_uniform, median_seconds, mlp_arrays, report, uniform

want = (lambda i: i.startswith(sys.argv[1])) if len(sys.argv) > 1 else (lambda i: True)


def mlp_params(sizes, dtype, seed):
    return [torch.tensor(a, dtype=dtype) for a in mlp_arrays(sizes, seed)]


def mlp_loss(params, x, labels):
    h = x
    layers = len(params) // 2
    for l in range(layers):
        h = h @ params[2 * l] + params[2 * l + 1]
        if l + 1 < layers:
            h = torch.relu(h)
    logp = torch.log_softmax(h, dim=-1)
    return -(logp * labels).sum() / x.shape[0]


if want("w0"):
    g = grad(lambda x: x * x + torch.sin(x))
    x = torch.tensor(0.3, dtype=torch.float64)
    report("w0-call", median_seconds(lambda: g(x)))

if want("w1") or want("w2"):
    params = mlp_params([784, 512, 512, 10], torch.float32, 1)
    x = torch.tensor(uniform(128 * 784, 7, 1.0).reshape(128, 784), dtype=torch.float32)
    labels = torch.nn.functional.one_hot(torch.tensor([(i * 7) % 10 for i in range(128)]), 10).float()
    if want("w1"):
        with torch.no_grad():
            report("w1-forward", median_seconds(lambda: mlp_loss(params, x, labels)))
        ps = [p.clone().requires_grad_(True) for p in params]

        def value_and_grad():
            loss = mlp_loss(ps, x, labels)
            grads = torch.autograd.grad(loss, ps)
            return loss, grads

        report("w1-value_and_grad", median_seconds(value_and_grad))
    if want("w2"):
        v = [torch.tensor(uniform(p.numel(), 100 + k, 1.0).reshape(p.shape), dtype=torch.float32) for k, p in enumerate(params)]
        g = grad(lambda p: mlp_loss(p, x, labels))
        report("w2-hvp", median_seconds(lambda: jvp(g, (params,), (v,))[1]))

if want("w3"):
    d = 64
    params = mlp_params([d, 128, 128, 1], torch.float64, 3)
    pts = torch.tensor(uniform(64 * d, 9, 1.0).reshape(64, d))

    def net(x):
        h1 = torch.tanh(x @ params[0] + params[1])
        h2 = torch.tanh(h1 @ params[2] + params[3])
        return (h2 @ params[4] + params[5]).sum()

    lap = vmap(lambda x: torch.trace(hessian(net)(x)))
    report("w3-laplacian", median_seconds(lambda: lap(pts)))

if want("w4"):
    x = torch.tensor(fast_uniform(1_000_000, 4, 2.0), dtype=torch.float32)
    f = lambda x: (torch.sin(x) * torch.exp(-x * x) + torch.tanh(x)).sum()
    with torch.no_grad():
        report("w4-forward", median_seconds(lambda: f(x)))
    report("w4-grad", median_seconds(lambda: grad(f)(x)))


def rosenbrock(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


if want("w5"):
    x = torch.tensor(fast_uniform(1_000_000, 5, 1.0))
    with torch.no_grad():
        report("w5-forward", median_seconds(lambda: rosenbrock(x)))
    report("w5-grad", median_seconds(lambda: grad(rosenbrock)(x)))

if want("w6"):
    x = torch.tensor(uniform(200, 6, 1.0))
    report("w6-hessian", median_seconds(lambda: hessian(rosenbrock)(x)))

if want("w8"):
    import numpy as np
    from torch.func import grad_and_value

    def spd(batch, n, seed, dtype):
        b = torch.tensor(uniform(int(np.prod(batch, dtype=np.int64)) * n * n, seed, 1.0).reshape(*batch, n, n), dtype=dtype)
        return b @ b.transpose(-1, -2) / n + torch.eye(n, dtype=dtype)

    def logdet(a):
        return 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(a), dim1=-2, dim2=-1)).sum()

    a = spd((), 256, 8, torch.float64)
    report("w8-logdet", median_seconds(lambda: grad_and_value(logdet)(a)))

    # PyTorch has no sqrtm either: the eigh-based form.
    def sqrtm_sum(a):
        w, v = torch.linalg.eigh(a)
        return ((v * torch.sqrt(w)[..., None, :]) @ v.transpose(-1, -2)).sum()

    a = spd((32,), 64, 9, torch.float32)
    report("w8-sqrtm", median_seconds(lambda: grad_and_value(sqrtm_sum)(a)))


if want("w9"):
    # Neural ODE (see benches/workloads.rs): torchdiffeq dopri5, rtol = atol = 1e-6, first step
    # chosen by the solver, loss = mean of the final state's squares; autograd through the
    # solver (odeint) and the continuous adjoint (odeint_adjoint).
    from torchdiffeq import odeint, odeint_adjoint
    from common import node_arrays

    # One thread: the operations are small (256 x 64), and OpenMP's two threads spin-wait
    # badly on a busy 2-core machine (a 256x64 tanh(a @ b) measured 60x slower than on one).
    torch.set_num_threads(1)
    arrays, y0 = node_arrays()
    y0 = torch.tensor(y0, dtype=torch.float64)
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(a, dtype=torch.float64)) for a in arrays])
            self.nfe = 0

        def forward(self, t, y):
            self.nfe += 1
            p = self.p
            h1 = torch.tanh(y @ p[0] + p[1])
            h2 = torch.tanh(h1 @ p[2] + p[3])
            return h2 @ p[4] + p[5]

    func = Field()
    params = list(func.parameters())

    def node_loss(solver):
        return (solver(func, y0, ts, rtol=1e-6, atol=1e-6, method="dopri5")[-1] ** 2).mean()

    def value_and_grad(solver):
        loss = node_loss(solver)
        return loss, torch.autograd.grad(loss, params)

    with torch.no_grad():
        report("w9-node-forward", median_seconds(lambda: node_loss(odeint)))
    report("w9-node-grad", median_seconds(lambda: value_and_grad(odeint)))
    report("w9-node-grad-adjoint", median_seconds(lambda: value_and_grad(odeint_adjoint)))
    line = []
    for name, solver in (("odeint", odeint), ("odeint_adjoint", odeint_adjoint)):
        func.nfe = 0
        loss = node_loss(solver)
        forward = func.nfe
        torch.autograd.grad(loss, params)
        back = func.nfe - forward
        how = "autograd through the stored graph" if solver is odeint else f"{back} f+vjp"
        line.append(f"{name}: forward {forward}, backward {how}")
    with torch.no_grad():
        value = float(node_loss(odeint))
    print(f"# w9 nfe torchdiffeq (loss {value:.6e}): " + "; ".join(line), flush=True)
