"""Median ms of 7 calls per op at the given thread count, as one JSON line: run with the python of
each build to compare them (run.sh). Usage: python compare_builds.py THREADS LABEL"""
import json, os, sys, time, statistics, torch
threads = int(sys.argv[1]); torch.set_num_threads(threads)
import ppt
import ppt.nn as pnn
from ppt.sparse import SparseTensor
from ppt.ops import (voxelize, farthest_point_sample, knn, sparse_kernel_map, sparse_conv, sparse_max_pool,
                     segment_batch_norm, rasterize_gaussians)
from ppt.data.synthetic import indoor_room, object_clouds
from ppt.bench.raster import Workload, make_inputs, ppt_step
from ppt.bench.sparse_conv import SpUNetS
g = torch.Generator().manual_seed(0)
coord = torch.cat([indoor_room(250_000, seed=s) for s in range(4)]); batch = torch.arange(4).repeat_interleave(250_000)
clouds = object_clouds(32, 2048); big = indoor_room(32768, seed=4)[None]
sites = voxelize(indoor_room(108_000, seed=0), 0.02)[0]; shape = (sites[:, 1:].amax(0) + 1).tolist(); n = sites.shape[0]
_, pairs, offs = sparse_kernel_map(sites, 1, shape, 3, submanifold=True)
f64 = torch.randn(n, 64, generator=g); w = torch.randn(64, 27, 64, generator=g) / 40; go = torch.randn(n, 64, generator=g)
x = torch.randn(1_000_000, 64, generator=g); seg = torch.arange(1_000_000) * 8 // 1_000_000 % 3; gx = torch.randn_like(x)
wl = Workload("object", 32, 4, 128, 128, 1024); gin = make_inputs(wl, torch.device("cpu"))
stack = SpUNetS(pnn); feats = torch.randn(n, 6, generator=g)
def conv_fb():
    ff = f64.detach().requires_grad_(); ww = w.detach().requires_grad_(); y = sparse_conv(ff, ww, pairs, offs, n); y.backward(go)
def bn_fb():
    xx = x.detach().requires_grad_(); y = segment_batch_norm(xx, seg, 3, training=True); y.backward(gx)
def stack_f():
    with torch.no_grad(): stack(SparseTensor(feats, sites, shape, 1))
ops = [("voxelize 1M", lambda: voxelize(coord, 0.02, batch)), ("fps 32x2048", lambda: farthest_point_sample(clouds, 128)),
       ("fps 1x32768", lambda: farthest_point_sample(big, 256)), ("knn", lambda: knn(clouds[:, :128], clouds, 32)),
       ("kmap subm 100k", lambda: sparse_kernel_map(sites, 1, shape, 3, submanifold=True)), ("conv C64 fb 100k", conv_fb),
       ("segbn 1M C64 fb", bn_fb), ("raster obj fb", lambda: ppt_step(wl, gin, True)), ("SpUNet-S stack fwd", stack_f)]
res = {}
for name, fn in ops:
    fn(); fn()
    ts = []
    for _ in range(7):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    res[name] = 1e3 * statistics.median(ts)
print(json.dumps({"build": sys.argv[2], "threads": threads, "load_average_1min": os.getloadavg()[0],
                  "ppt": os.path.dirname(ppt.__file__), "median_ms": res}), flush=True)
