#!/usr/bin/env bash
# One prepared GPU check of VOC detection for the `device` tool (a lent H100/H200 with its own
# torch, no network): `bench run --task voc` on the fixture on the GPU (ResNet-50 and -18, fp32,
# and ResNet-50 in bf16-mixed), printing mAP and the validation mAP by epoch, then the training
# step timing at the smoke and the real size (batch 2 and the task's batch 16, fp32 and bf16).
# Missing pure-Python packages travel as wheels in .whl/ (carry: [".whl"]).
# STEPS (default 300) steps per run; SKIP_TIMING=1 skips the timing.
set -uo pipefail
source scripts/device_env.sh
w=/tmp/gpu-voc
python3 -c "
import torch, torchvision
from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.data.voc import write_voc_fixture
write_voc_fixture('$w/data')
for arch in ('resnet50', 'resnet18'):
    torch.manual_seed(0)
    save_imagenet_example_checkpoint(f'$w/{arch}_paper.pth', arch, torchvision.models.get_model(arch).state_dict())"
run_case() {  # arch steps precision
  local results=$w/results-$1-$3
  echo "== $1, $2 steps, $3"
  python3 -m benchmark.cli run --task voc --backbone $w/$1_paper.pth --subset tiny \
    --max-steps $2 --max-epochs 100 --data-root $w/data --results $results --accelerator gpu \
    --devices 1 --precision $3 2>&1 | grep -E "^map_voc07|^step [0-9] |rror"
  python3 -c "
import csv, glob, json
r = json.load(open(glob.glob('$results/runs/*/*/*/*/record.json')[0])); m = r['metrics']; l = r['training']['losses']
print('record:', r['status'], r['hardware'].get('gpus'), 'wall', r['wall_seconds'], 'steps', r['training']['steps'])
print('map_voc07', m['map_voc07'], 'map_voc_area', m['map_voc_area'], 'loss first', [round(x, 3) for x in l[:3]], 'last', [round(x, 3) for x in l[-3:]])
print('per_class_ap_voc07', {k: v if v is None else round(v, 3) for k, v in m['per_class_ap_voc07'].items()})
rows = list(csv.DictReader(open(glob.glob('$results/runs/*/*/*/*/logs/csv/*/metrics.csv')[0])))
print('val_map by epoch', [round(float(x['val_map']), 3) for x in rows if x.get('val_map')])"
}
run_case resnet50 ${STEPS:-300} 32-true
run_case resnet18 ${STEPS:-300} 32-true
run_case resnet50 ${STEPS:-300} bf16-mixed
[ "${SKIP_TIMING:-0}" = 1 ] && exit 0
python3 scripts/bench_detection_step.py --device cuda --steps 10 --warmup 3 --batch-size 2
python3 scripts/bench_detection_step.py --device cuda --steps 6 --warmup 2 --batch-size 16 --only real
python3 scripts/bench_detection_step.py --device cuda --steps 6 --warmup 2 --batch-size 16 --only real --bf16
