#!/usr/bin/env bash
# Shared body of train_{full,performance}_{1p,8p}.sh: the seed's Huawei ModelZoo scripts
# (Hourglass_ID0155_for_TensorFlow), same arguments, same outputs:
#   output/$ASCEND_DEVICE_ID/train_$ASCEND_DEVICE_ID.log   the training log
#   output/$ASCEND_DEVICE_ID/${CaseName}.log                Network, RankSize, BatchSize,
#       DeviceType, CaseName, ActualFPS, TrainingTime (ms/step), TrainAccuracy (val PCKh),
#       ActualLoss, E2ETrainingTime
#   output/$ASCEND_DEVICE_ID/train_${CaseName}_loss.txt     final loss
#   output/$ASCEND_DEVICE_ID/ckpt       the full run's logdir (a rerun resumes it)
#   output/$ASCEND_DEVICE_ID/ckpt_perf  the performance run's logdir (fresh every run)
# and on stdout "Final Performance images/sec : X" and "E2E Training Duration sec : Y".
#
# --data_path is an MPII folder (images/ + annotations; prepared into shards first, once)
# or a shards folder written by `hgpipe prepare`.
#
# Several devices (the 8p scripts; ranks > 1): one process per device, as the ModelZoo 8p
# scripts launch them, with RANK_ID, RANK_SIZE, ASCEND_DEVICE_ID and RANK_TABLE_FILE set,
# training with `--distributed hccl` on npu (`--distributed horovod` would need horovodrun:
# use it directly on gpu/cpu, see the README). RANK_SIZE (default: 8) ranks in all;
# this machine runs DEVICE_NUM of them (default: min(8, RANK_SIZE)), ranks
# RANK_ID_START.. (default 0) on devices 0.. . Each device logs to
# output/$ASCEND_DEVICE_ID/train_$ASCEND_DEVICE_ID.log; all ranks share the logdir
# output/ckpt (rank 0 writes it; on several machines it must be a shared folder), and the
# machine with rank 0 writes the CaseName log in output/0/ with the global images/sec.
# RANK_TABLE_FILE: the environment's, else --rank_table_file=FILE.
set -euo pipefail
mode="$1"; ranks="$2"; shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cur_path=$(pwd)

Network="Hourglass_ID0155_for_TensorFlow"
if [ "$ranks" = 1 ]; then
  RANK_SIZE=1
  ASCEND_DEVICE_ID="${ASCEND_DEVICE_ID:-0}"
else
  RANK_SIZE="${RANK_SIZE:-$ranks}"
  RANK_ID_START="${RANK_ID_START:-0}"
  DEVICE_NUM="${DEVICE_NUM:-$(( RANK_SIZE < 8 ? RANK_SIZE : 8 ))}"
  ASCEND_DEVICE_ID=0
fi
rank_table="${RANK_TABLE_FILE:-}"
config="$root/configs/seed_4x256.cfg"
precision_mode="allow_mix_precision"
device="npu"
data_path=""
steps=""
[ "$mode" = performance ] && steps=1000

usage() {
  cat <<USAGE
usage: $(basename "$0") --data_path=DIR [--precision_mode=MODE] [--device=npu|gpu|cpu]
                        [--config=FILE] [--steps=N] [--rank_table_file=FILE (8p)]
  --data_path        MPII folder (images/ + annotation file) or an hgpipe shards folder
  --precision_mode   Ascend precision mode (allow_mix_precision, allow_fp32_to_fp16,
                     force_fp16, must_keep_origin_dtype, force_fp32) [allow_mix_precision]
  --device           npu (needs npu_bridge), gpu or cpu [npu]
  --config           hgpipe / seed config [configs/seed_4x256.cfg]
  --steps            train up to this step [full: the config's nEpochs x epoch_size;
                     performance: 1000]
USAGE
}
for para in "$@"; do
  case "$para" in
    -h|--help) usage; exit 0 ;;
    --data_path=*) data_path="${para#*=}" ;;
    --precision_mode=*) precision_mode="${para#*=}" ;;
    --device=*) device="${para#*=}" ;;
    --config=*) config="${para#*=}" ;;
    --steps=*) steps="${para#*=}" ;;
    --rank_table_file=*) rank_table="${para#*=}" ;;
    --over_dump*|--data_dump_flag*|--data_dump_step*|--profiling*|--ckpt_path*)
      echo "[Warning] $para is accepted for compatibility and ignored" >&2 ;;
    *) echo "[Error] unknown parameter $para" >&2; usage >&2; exit 1 ;;
  esac
done
if [ -z "$data_path" ]; then echo "[Error] para \"data_path\" must be config" >&2; exit 1; fi

# $PYTHON (default: the hgpipe on PATH, else python3 -m hgpipe from this checkout)
if [ -n "${PYTHON:-}" ] || ! command -v hgpipe >/dev/null 2>&1; then
  HG=("${PYTHON:-python3}" -m hgpipe); export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
else
  HG=(hgpipe)
fi
out="$cur_path/output/$ASCEND_DEVICE_ID"
mkdir -p "$out"
log="$out/train_$ASCEND_DEVICE_ID.log"
start_time=$(date +%s)
shards="$data_path"
if [ ! -f "$data_path/manifest.json" ]; then
  shards="$cur_path/output/shards"
  "${HG[@]}" prepare --mpii "$data_path" --out "$shards" --config "$config" >> "$log" 2>&1
fi
extra=()
[ -n "$steps" ] && extra+=(--steps "$steps")
train() {  # the training command of one process; its log is the caller's business
  "${HG[@]}" train --config "$config" --data "$shards" --device "$device" \
      --set "Train.precision_mode=$precision_mode" "${extra[@]}" "$@"
}
# A full run resumes its own checkpoints; a performance run always starts from step 0 in
# a fresh folder of its own, so neither one resumes or rotates away the other's.
ckpt_name=ckpt
[ "$mode" = performance ] && ckpt_name=ckpt_perf
if [ "$RANK_SIZE" = 1 ]; then
  logdir="$out/$ckpt_name"
  [ "$mode" = performance ] && rm -rf "$logdir"
  train --logdir "$logdir" >> "$log" 2>&1
else
  if [ -z "$rank_table" ] || [ ! -f "$rank_table" ]; then
    echo "[Error] RANK_TABLE_FILE '${rank_table}' not found: HCCL needs the rank table of the" \
         "devices (set RANK_TABLE_FILE or --rank_table_file=FILE)" >&2; exit 1
  fi
  backend=hccl
  [ "$device" = npu ] || { echo "[Error] the 8p scripts train on npu (HCCL); on $device use horovodrun (README)" >&2; exit 1; }
  logdir="$cur_path/output/$ckpt_name"
  [ "$mode" = performance ] && [ "$RANK_ID_START" = 0 ] && rm -rf "$logdir"
  pids=()
  for (( local_id = 0; local_id < DEVICE_NUM; local_id++ )); do
    rank=$(( RANK_ID_START + local_id ))
    dev_out="$cur_path/output/$local_id"
    mkdir -p "$dev_out"
    echo "[$(date +%Y%m%d-%H:%M:%S)] [INFO] start: rank $rank of $RANK_SIZE on device $local_id" >> "$log"
    RANK_ID=$rank RANK_SIZE=$RANK_SIZE ASCEND_DEVICE_ID=$local_id RANK_TABLE_FILE="$rank_table" \
      train --logdir "$logdir" --distributed "$backend" \
      >> "$dev_out/train_$local_id.log" 2>&1 &
    pids+=($!)
  done
  failed=""
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed="$failed $i"
  done
  if [ -n "$failed" ]; then
    echo "[Error] training failed on device(s)$failed: see output/<device>/train_<device>.log" >&2
    exit 1
  fi
  if [ "$RANK_ID_START" != 0 ]; then
    echo "ranks $RANK_ID_START..$(( RANK_ID_START + DEVICE_NUM - 1 )) done; the machine with rank 0 reports"
    exit 0
  fi
fi
end_time=$(date +%s)
e2e_time=$(( end_time - start_time ))

# every figure from train_summary.json in one read; a missing value is printed empty
# (a run of 0 steps has no rate), never a parse error
summary="$logdir/train_summary.json"
eval "$("${PYTHON:-python3}" - "$summary" <<'PY'
import json, shlex, sys
s = json.load(open(sys.argv[1]))
def fmt(value, pattern):
    return "" if value is None else pattern % value
history = s.get("validation") or []
values = {"BatchSize": s.get("batch_size"),
          "FPS": fmt(s.get("images_per_sec"), "%.2f"),
          "TrainingTime": fmt(s.get("step_time_ms_median"), "%.3f"),
          "ActualLoss": fmt(s.get("final_loss"), "%s"),
          "train_accuracy": fmt(history[-1]["pckh"], "%.2f") if history else ""}
for name, value in values.items():
    print("%s=%s" % (name, shlex.quote("" if value is None else str(value))))
PY
)"
echo "------------------ Final result ------------------"
echo "Final Performance images/sec : $FPS"
echo "Final Train Accuracy : ${train_accuracy}"
echo "E2E Training Duration sec : $e2e_time"
suffix=$([ "$mode" = performance ] && echo perf || echo acc)
CaseName="${Network}_bs${BatchSize}_${RANK_SIZE}p_${suffix}"
echo "$ActualLoss" > "$out/train_${CaseName}_loss.txt"
{
  echo "Network = ${Network}"
  echo "RankSize = ${RANK_SIZE}"
  echo "BatchSize = ${BatchSize}"
  echo "DeviceType = $(uname -m)"
  echo "CaseName = ${CaseName}"
  echo "ActualFPS = ${FPS}"
  echo "TrainingTime = ${TrainingTime}"
  echo "TrainAccuracy = ${train_accuracy}"
  echo "ActualLoss = ${ActualLoss}"
  echo "E2ETrainingTime = ${e2e_time}"
} > "$out/${CaseName}.log"
