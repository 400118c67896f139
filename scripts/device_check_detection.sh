#!/usr/bin/env bash
# One prepared GPU check of VOC detection for the `device` tool (a lent H100/H200 with its own
# torch, no network): `bench run --task voc` on the fixture on the GPU, then the training-step
# timing at the smoke and the real size (batch 2 and the task's batch 16, fp32 and bf16).
# Missing pure-Python packages travel as wheels in .whl/ (carry: [".whl"]).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, torchvision, pytorch_lightning as pl; print('torch', torch.__version__, 'tv', torchvision.__version__, 'pl', pl.__version__)"
w=/tmp/gpu-voc
python3 -c "
import torch, torchvision
from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.data.voc import write_voc_fixture
write_voc_fixture('$w/data'); torch.manual_seed(0)
save_imagenet_example_checkpoint('$w/resnet50_paper.pth', 'resnet50', torchvision.models.resnet50().state_dict())"
python3 -m benchmark.cli run --task voc --backbone $w/resnet50_paper.pth --subset tiny \
  --max-steps ${STEPS:-300} --max-epochs 40 --data-root $w/data --results $w/results --accelerator gpu --devices 1 \
  2>&1 | grep -vE "Warning|warn" | tail -5
python3 -c "
import json, glob; r = json.load(open(glob.glob('$w/results/runs/*/*/*/*/record.json')[0]))
m = r['metrics']; print('record:', r['status'], r['accelerator'], r['hardware'].get('gpus'), 'wall', r['wall_seconds'])
print('map_voc07', m['map_voc07'], 'map_voc_area', m['map_voc_area'], 'steps', r['training']['steps'], 'losses first/last', [round(x, 3) for x in r['training']['losses'][:3]], [round(x, 3) for x in r['training']['losses'][-3:]])
print('per_class_ap_voc07', m['per_class_ap_voc07'])
import csv; rows = list(csv.DictReader(open(glob.glob('$w/results/runs/*/*/*/*/train_log.csv')[0])))
print('val_map by epoch', [round(float(x['val_map']), 3) for x in rows if x.get('val_map')])"
python3 scripts/bench_detection_step.py --device cuda --steps 10 --warmup 3 --batch-size 2
python3 scripts/bench_detection_step.py --device cuda --steps 6 --warmup 2 --batch-size 16 --only real
python3 scripts/bench_detection_step.py --device cuda --steps 6 --warmup 2 --batch-size 16 --only real --bf16
