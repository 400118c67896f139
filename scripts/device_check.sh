#!/usr/bin/env bash
# One prepared GPU check for the `device` tool (a lent H100/H200 with its own torch, no network):
# the demo-sized run on the GPU through `bench run`, then the Lightning-vs-plain step benchmark in
# fp32 and in bf16 + channels_last. Missing pure-Python packages travel as wheels in .whl/.
set -uo pipefail
source scripts/device_env.sh
w=/tmp/gpu-demo
python3 -c "
import torch, torchvision
from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.data.cifar import write_cifar10_fixture
write_cifar10_fixture('$w/data'); torch.manual_seed(0)
save_imagenet_example_checkpoint('$w/resnet50_blurred_ILSVRC.pth', 'resnet50', torchvision.models.resnet50().state_dict())"
python3 -m benchmark.cli run --task cifar10 --backbone $w/resnet50_blurred_ILSVRC.pth --subset tiny \
  --max-steps 5 --data-root $w/data --results $w/results --accelerator gpu --devices 1 \
  --precision bf16-mixed 2>&1 | grep -vE "Warning|warn" | tail -6
python3 -c "
import json, glob; r = json.load(open(glob.glob('$w/results/runs/*/*/*/*/record.json')[0]))
print('record:', r['status'], r['accelerator'], r['hardware'].get('gpus'), 'top1', r['metrics']['top1'], 'losses', [round(x, 3) for x in r['training']['losses']])"
python3 scripts/bench_lightning_overhead.py --arch resnet50 --batch-size 64 --image-size 224 \
  --steps 40 --warmup 10 --rounds 3 2>&1 | tail -4
python3 scripts/bench_lightning_overhead.py --arch resnet50 --batch-size 128 --image-size 224 \
  --steps 50 --warmup 10 --rounds 3 --precision bf16 --channels-last 2>&1 | tail -4
