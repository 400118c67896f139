# Sourced by the scripts/device_check*.sh GPU checks (the `device` tool: a lent H100/H200 with its
# own torch and no network). Pure-Python packages missing there travel as wheels in .whl/
# (carry: [".whl"]); this installs them and says what the machine runs.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, torchvision, pytorch_lightning as pl; print('torch', torch.__version__, 'tv', torchvision.__version__, 'pl', pl.__version__)"
