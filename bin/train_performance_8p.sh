#!/usr/bin/env bash
# 1000-step performance run on 8 Ascend NPUs (HCCL), as ModelZoo's train_performance_8p.sh.
exec "$(dirname "$0")/modelzoo.sh" performance 8 "$@"
