"""The benchmark workloads in JAX, every function under jax.jit, timed with block_until_ready."""
import sys

import jax
import numpy as np
import jax.numpy as jnp
from jax.experimental import jet
import resource

from common import fast_uniform, median_seconds, mlp_arrays, report, uniform

jax.config.update("jax_enable_x64", True)
want = (lambda i: i.startswith(sys.argv[1])) if len(sys.argv) > 1 else (lambda i: True)


def mlp_params(sizes, dtype, seed):
    return [jnp.asarray(a, dtype) for a in mlp_arrays(sizes, seed)]


def mlp_loss(params, x, labels):
    h = x
    layers = len(params) // 2
    for l in range(layers):
        h = h @ params[2 * l] + params[2 * l + 1]
        if l + 1 < layers:
            h = jax.nn.relu(h)
    logp = jax.nn.log_softmax(h, axis=-1)
    return -(logp * labels).sum() / x.shape[0]


def run(f, *args):
    return median_seconds(lambda: jax.block_until_ready(f(*args)))


if want("w0"):
    f = jax.jit(jax.grad(lambda x: x * x + jnp.sin(x)))
    report("w0-call", run(f, jnp.float64(0.3)))

if want("w1") or want("w2"):
    params = mlp_params([784, 512, 512, 10], jnp.float32, 1)
    x = jnp.asarray(uniform(128 * 784, 7, 1.0).reshape(128, 784), jnp.float32)
    labels = jax.nn.one_hot(jnp.array([(i * 7) % 10 for i in range(128)]), 10, dtype=jnp.float32)
    if want("w1"):
        report("w1-forward", run(jax.jit(lambda p: mlp_loss(p, x, labels)), params))
        report("w1-value_and_grad", run(jax.jit(jax.value_and_grad(lambda p: mlp_loss(p, x, labels))), params))
    if want("w2"):
        v = [jnp.asarray(uniform(p.size, 100 + k, 1.0).reshape(p.shape), jnp.float32) for k, p in enumerate(params)]
        g = jax.grad(lambda p: mlp_loss(p, x, labels))
        report("w2-hvp", run(jax.jit(lambda p, v: jax.jvp(g, (p,), (v,))[1]), params, v))

if want("w3"):
    d = 64
    params = mlp_params([d, 128, 128, 1], jnp.float64, 3)
    pts = jnp.asarray(uniform(64 * d, 9, 1.0).reshape(64, d))

    def net(x):
        h1 = jnp.tanh(x @ params[0] + params[1])
        h2 = jnp.tanh(h1 @ params[2] + params[3])
        return (h2 @ params[4] + params[5]).sum()

    lap = jax.jit(jax.vmap(lambda x: jnp.trace(jax.hessian(net)(x))))
    report("w3-laplacian", run(lap, pts))

    # The same Laplacian with Taylor mode (jax.experimental.jet): d second-order jets.
    def lap_jet(x):
        def second(v):
            _, (_, y2) = jet.jet(net, (x,), ((v, jnp.zeros_like(v)),))
            return y2

        return jax.vmap(second)(jnp.eye(d)).sum()

    report("w3-laplacian-taylor", run(jax.jit(jax.vmap(lap_jet)), pts))

if want("w4"):
    x = jnp.asarray(fast_uniform(1_000_000, 4, 2.0), jnp.float32)
    f = lambda x: (jnp.sin(x) * jnp.exp(-x * x) + jnp.tanh(x)).sum()
    report("w4-forward", run(jax.jit(f), x))
    report("w4-grad", run(jax.jit(jax.grad(f)), x))


def rosenbrock(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


if want("w5"):
    x = jnp.asarray(fast_uniform(1_000_000, 5, 1.0))
    report("w5-forward", run(jax.jit(rosenbrock), x))
    report("w5-grad", run(jax.jit(jax.grad(rosenbrock)), x))

if want("w6"):
    x = jnp.asarray(uniform(200, 6, 1.0))
    report("w6-hessian", run(jax.jit(jax.hessian(rosenbrock)), x))


def mlp_tanh(p, x):
    h1 = jnp.tanh(x @ p[0] + p[1])
    h2 = jnp.tanh(h1 @ p[2] + p[3])
    return (h2 @ p[4] + p[5]).sum()


if want("w7"):
    # One PINN training step with the STDE Laplacian (d = 1000, batch 100, 16 sampled
    # dimensions per point, drawn by a permutation as cotangent does), Adam by hand.
    d, batch, samples = 1000, 100, 16
    params = mlp_params([d, 128, 128, 1], jnp.float32, 7)
    x = jnp.asarray(uniform(batch * d, 11, 1.0 / d**0.5).reshape(batch, d), jnp.float32)
    g = jnp.asarray(uniform(batch, 12, 1.0), jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), batch)

    def u(p, x):
        return (1.0 - (x * x).sum()) * mlp_tanh(p, x)

    def stde_laplacian(p, x, key):
        idx = jax.random.permutation(key, d)[:samples]
        dirs = jax.nn.one_hot(idx, d, dtype=x.dtype)

        def second(v):
            _, (_, y2) = jet.jet(lambda x: u(p, x), (x,), ((v, jnp.zeros_like(v)),))
            return y2

        return jax.vmap(second)(dirs).sum() * (d / samples)

    def loss(p, x, g, keys):
        lap = jax.vmap(lambda x, k: stde_laplacian(p, x, k))(x, keys)
        return ((lap - g) ** 2).mean()

    def adam(p, m, v, t, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        t = t + 1
        m = [b1 * a + (1 - b1) * gr for a, gr in zip(m, grads)]
        v = [b2 * a + (1 - b2) * gr * gr for a, gr in zip(v, grads)]
        p = [q - lr * (a / (1 - b1**t)) / (jnp.sqrt(b / (1 - b2**t)) + eps) for q, a, b in zip(p, m, v)]
        return p, m, v, t

    @jax.jit
    def step(p, m, v, t, x, g, keys):
        l, grads = jax.value_and_grad(loss)(p, x, g, keys)
        p, m, v, t = adam(p, m, v, t, grads)
        return l, p, m, v, t

    zeros = [jnp.zeros_like(a) for a in params]
    report("w7-pinn-stde", run(step, params, zeros, zeros, jnp.float32(0.0), x, g, keys))
    print(f"# w7 peak memory (process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)

if want("w10"):
    d = 64
    params = mlp_params([d, 128, 128, 1], jnp.float64, 3)
    pts = jnp.asarray(uniform(1024 * d, 9, 1.0).reshape(1024, d))
    v = jnp.asarray(uniform(d, 10, 1.0))
    for k in range(1, 9):
        series = ((v,) + tuple(jnp.zeros_like(v) for _ in range(k - 1)),)
        f = jax.jit(jax.vmap(lambda x, series=series: jet.jet(lambda x: mlp_tanh(params, x), (x,), series)[1][-1]))
        report(f"w10-jet-order-{k}", run(f, pts))
if want("w8"):
    def spd(batch, n, seed, dtype):
        b = jnp.asarray(uniform(int(np.prod(batch, dtype=np.int64)) * n * n, seed, 1.0).reshape(*batch, n, n), dtype)
        return b @ jnp.swapaxes(b, -1, -2) / n + jnp.eye(n, dtype=dtype)

    def logdet(a):
        return 2.0 * jnp.log(jnp.diagonal(jnp.linalg.cholesky(a), axis1=-2, axis2=-1)).sum()

    report("w8-logdet", run(jax.jit(jax.value_and_grad(logdet)), spd((), 256, 8, jnp.float64)))

    # JAX has no sqrtm with a gradient: the eigh-based form.
    def sqrtm_sum(a):
        w, v = jnp.linalg.eigh(a)
        return ((v * jnp.sqrt(w)[..., None, :]) @ jnp.swapaxes(v, -1, -2)).sum()

    report("w8-sqrtm", run(jax.jit(jax.value_and_grad(sqrtm_sum)), spd((32,), 64, 9, jnp.float32)))


if want("w9"):
    # Neural ODE (see benches/workloads.rs): diffrax Dopri5, PIDController(rtol=atol=1e-6),
    # dt0 chosen by the solver, loss = mean of the final state's squares.
    import diffrax
    from common import node_arrays

    arrays, y0 = node_arrays()
    params = [jnp.asarray(a) for a in arrays]
    y0 = jnp.asarray(y0)

    def field(p, y):
        h1 = jnp.tanh(y @ p[0] + p[1])
        h2 = jnp.tanh(h1 @ p[2] + p[3])
        return h2 @ p[4] + p[5]

    def node_solve(p, adjoint, vf=field):
        term = diffrax.ODETerm(lambda t, y, p: vf(p, y))
        ctrl = diffrax.PIDController(rtol=1e-6, atol=1e-6)
        return diffrax.diffeqsolve(term, diffrax.Dopri5(), t0=0.0, t1=1.0, dt0=None, y0=y0, args=p,
                                   stepsize_controller=ctrl, adjoint=adjoint, max_steps=4096)

    def node_loss(p, adjoint, vf=field):
        return (node_solve(p, adjoint, vf).ys[-1] ** 2).mean()

    rca = diffrax.RecursiveCheckpointAdjoint()
    report("w9-node-forward", run(jax.jit(lambda p: node_loss(p, rca)), params))
    report("w9-node-grad", run(jax.jit(jax.value_and_grad(lambda p: node_loss(p, rca))), params))
    report("w9-node-grad-adjoint", run(jax.jit(jax.value_and_grad(lambda p: node_loss(p, diffrax.BacksolveAdjoint()))), params))

    # Counts (outside the timed rows): a vector field that reports each evaluation and each
    # vjp of itself to the host.
    counts = {"f": 0, "vjp": 0}

    def bump(k):
        def cb():
            counts[k] += 1
        return cb

    @jax.custom_vjp
    def counted(p, y):
        jax.debug.callback(bump("f"))
        return field(p, y)

    def counted_fwd(p, y):
        jax.debug.callback(bump("f"))
        out, pb = jax.vjp(field, p, y)
        return out, (p, y)

    def counted_bwd(res, ct):
        jax.debug.callback(bump("vjp"))
        return jax.vjp(field, *res)[1](ct)

    counted.defvjp(counted_fwd, counted_bwd)
    line = []
    for name, adjoint in (("recursive-checkpoint", rca), ("backsolve", diffrax.BacksolveAdjoint())):
        stats = jax.jit(lambda p: node_solve(p, adjoint, counted).stats)(params)
        jax.effects_barrier()
        forward = counts["f"]
        counts.update(f=0, vjp=0)
        jax.block_until_ready(jax.jit(jax.grad(lambda p: node_loss(p, adjoint, counted)))(params))
        jax.effects_barrier()
        line.append(f"{name}: forward {forward} ({int(stats['num_accepted_steps'])} accepted, "
                    f"{int(stats['num_rejected_steps'])} rejected steps), value_and_grad {counts['f']} f + {counts['vjp']} vjp")
        counts.update(f=0, vjp=0)
    value = float(jax.jit(lambda p: node_loss(p, rca))(params))
    print(f"# w9 nfe diffrax (loss {value:.6e}): " + "; ".join(line), flush=True)
