"""Makes ht_fixture.json for tests/ht.rs: a reduced GradBench `ht` instance and the expected
objective, computed here by an independent NumPy port of ADBench's PyTorch `hand_objective`.

Usage: python3 ht_fixture.py GRADBENCH_CHECKOUT > ht_fixture.json   (needs numpy; the tests
do not run this, they read the JSON it wrote)."""

import json
import sys
from pathlib import Path

import numpy as np

root = Path(sys.argv[1]) / "evals/ht/data/complicated_small"
model_dir = root / "model"
bones = [l.split(":") for l in (model_dir / "bones.txt").read_text().splitlines()]
parents = [int(b[1]) for b in bones]
rel = np.array([[float(x) for x in b[2:18]] for b in bones]).reshape(-1, 4, 4)
inv = np.array([[float(x) for x in b[18:34]] for b in bones]).reshape(-1, 4, 4)
nb = len(bones)
verts = (model_dir / "vertices.txt").read_text().splitlines()
pos = np.zeros((len(verts), 3))
w = np.zeros((len(verts), nb))
for i, line in enumerate(verts):
    a = line.split(":")
    pos[i] = [float(x) for x in a[:3]]
    for k in range(int(a[8])):
        w[i, int(a[9 + 2 * k])] = float(a[10 + 2 * k])
tris = np.loadtxt(model_dir / "triangles.txt", int, delimiter=":")
lines = (root / "hand1_t26_c100.txt").read_text().splitlines()
npts, ntheta = [int(x) for x in lines[0].split()]
corr = [int(l.split()[0]) for l in lines[1 : 1 + npts]]
pts = [[float(x) for x in l.split()[1:]] for l in lines[1 : 1 + npts]]
us = [[float(x) for x in l.split()] for l in lines[1 + npts : 1 + 2 * npts]]
theta = [float(l) for l in lines[1 + 2 * npts : 1 + 2 * npts + ntheta]]

# Reduce: the first 12 points, the triangles they use, and only those triangles' vertices.
keep = 12
corr, pts, us = corr[:keep], pts[:keep], us[:keep]
used_tris = sorted(set(corr))
used_verts = sorted(set(int(v) for t in used_tris for v in tris[t]))
vmap = {v: i for i, v in enumerate(used_verts)}
new_tris = [[vmap[int(v)] for v in tris[t]] for t in used_tris]
tmap = {t: i for i, t in enumerate(used_tris)}
corr_t = [tmap[c] for c in corr]
corr_v = [vmap[int(tris[c][0])] for c in corr]  # simple variant: the triangle's first vertex
pos, w = pos[used_verts], w[used_verts]
hpos = np.concatenate([pos, np.ones((len(pos), 1))], axis=1)


def pose_params(theta):
    p = np.zeros((nb + 3, 3))
    p[0] = theta[0:3]
    p[1] = 1.0
    p[2] = theta[3:6]
    t, r = 6, 5
    for _ in range(5):
        for j in (1, 2, 3):
            p[r, 0] = theta[t]
            t += 1
            if j == 1:
                p[r, 1] = theta[t]
                t += 1
            r += 1
        r += 1
    return p


def euler(xzy):
    tx, ty, tz = xzy[0], xzy[2], xzy[1]
    rx = np.array([[1, 0, 0], [0, np.cos(tx), -np.sin(tx)], [0, np.sin(tx), np.cos(tx)]])
    ry = np.array([[np.cos(ty), 0, -np.sin(ty)], [0, 1, 0], [np.sin(ty), 0, np.cos(ty)]])
    rz = np.array([[np.cos(tz), -np.sin(tz), 0], [np.sin(tz), np.cos(tz), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angle_axis(a):
    n = np.sqrt(np.sum(a**2))
    if n < 1e-4:
        return np.eye(3)
    x, y, z = a / n
    s, c = np.sin(n), np.cos(n)
    return np.array(
        [
            [x * x + (1 - x * x) * c, x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
            [x * y * (1 - c) + z * s, y * y + (1 - y * y) * c, y * z * (1 - c) - x * s],
            [x * z * (1 - c) - y * s, z * y * (1 - c) + x * s, z * z + (1 - z * z) * c],
        ]
    )


def vertices(theta):
    p = pose_params(np.array(theta))
    relatives = []
    for i in range(nb):
        tr = np.eye(4)
        tr[:3, :3] = euler(p[3 + i])
        relatives.append(rel[i] @ tr)
    absolutes = []
    for i in range(nb):
        absolutes.append(relatives[i] if parents[i] == -1 else absolutes[parents[i]] @ relatives[i])
    transforms = [absolutes[i] @ inv[i] for i in range(nb)]
    out = np.zeros((len(hpos), 4))
    for i in range(nb):
        out += (transforms[i] @ hpos.T).T * w[:, i : i + 1]
    r = angle_axis(p[0]) * p[1]
    return out[:, :3] @ r.T + p[2]


def objective(theta, us=None):
    v = vertices(theta)
    if us is None:
        return (np.array(pts) - v[corr_v]).flatten()
    err = []
    for i in range(keep):
        t = new_tris[corr_t[i]]
        u = us[i]
        err.append(np.array(pts[i]) - (u[0] * v[t[0]] + u[1] * v[t[1]] + (1 - u[0] - u[1]) * v[t[2]]))
    return np.array(err).flatten()


model = {
    "bone_count": nb,
    "bone_names": [b[0] for b in bones],
    "parents": parents,
    "base_relatives": rel.tolist(),
    "inverse_base_absolutes": inv.tolist(),
    "base_positions": hpos.tolist(),
    "weights": w.tolist(),
    "triangles": new_tris,
    "is_mirrored": False,
}
simple = {"theta": theta, "data": {"model": model, "correspondences": corr_v, "points": pts}, "us": []}
complicated = {"theta": theta, "data": {"model": model, "correspondences": corr_t, "points": pts}, "us": us}
json.dump(
    {
        "simple": {"input": simple, "objective": objective(theta).tolist()},
        "complicated": {"input": complicated, "objective": objective(theta, us).tolist()},
    },
    sys.stdout,
)
