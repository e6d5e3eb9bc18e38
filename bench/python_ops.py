# Python side of `npm run bench:ops`: the same micro-workloads as bench/ops.ts in Debian's
# python3-torch (libtorch 1.13), printed as one JSON object. Run with /usr/bin/python3.
import json, sys, time
import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

a = torch.tensor([1.0, 2.0, 3.0, 4.0]); b = torch.ones(4)
n = 200000
for _ in range(10000): a + b
t = time.perf_counter()
for _ in range(n): a + b
out["tinyAddUs"] = (time.perf_counter() - t) / n * 1e6
ag = a.clone().requires_grad_()
t = time.perf_counter()
for _ in range(n): ag + b
out["tinyAddGradUs"] = (time.perf_counter() - t) / n * 1e6

x = torch.randn(512, 512); y = torch.randn(512, 512)
for _ in range(3): x @ y
t = time.perf_counter()
for _ in range(50): x @ y
out["matmul512Ms"] = (time.perf_counter() - t) / 50 * 1e3

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 256))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
X = torch.randn(64, 256); Y = torch.randn(64, 256)
def step():
    loss = ((model(X) - Y) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(20): step()
t = time.perf_counter()
steps = 300
for _ in range(steps): step()
out["mlpStepMs"] = (time.perf_counter() - t) / steps * 1e3
print(json.dumps(out))
