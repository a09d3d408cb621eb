import sys, time, statistics, torch, torch.nn.functional as F
from ppt.bench import ppt_step as P
from ppt.models import PointPromptTraining
points = int(sys.argv[1]); rounds = int(sys.argv[2])
P.ROOM_POINTS[False] = points
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
x, room = P.make_batch(False, torch.device("cpu"))
plain, prompted = P.make_models(torch.device("cpu"))
target = P.labels(room, ("ScanNet",) * 3)
new = PointPromptTraining._text_logits
def old(self, features, text):
    return F.normalize(self.proj_head(features), dim=-1) @ text.to(features.dtype).t() * self.logit_scale.exp()
def run_ppt(impl):
    PointPromptTraining._text_logits = impl
    return P.ppt_step(prompted, x, target, "ScanNet")
arms = {"plain": lambda: P.plain_step(plain, x, target), "ppt_old_head": lambda: run_ppt(old), "ppt_new_head": lambda: run_ppt(new)}
times = {k: [] for k in arms}
walls = {}
for fn in arms.values(): fn()
for r in range(rounds):
    for k, fn in arms.items():
        t = time.process_time(); w = time.perf_counter(); fn(); times[k].append(time.process_time() - t); walls.setdefault(k, []).append(time.perf_counter() - w)
med = {k: statistics.median(v) for k, v in times.items()}
print("voxels", x.features.shape[0], "threads", torch.get_num_threads(), {k: round(v*1e3, 1) for k, v in med.items()})
print("wall", {k: round(statistics.median(v), 1) for k, v in walls.items()}, "cpu-time medians below")
print("old/plain %.3f  new/plain %.3f" % (med["ppt_old_head"]/med["plain"], med["ppt_new_head"]/med["plain"]))
