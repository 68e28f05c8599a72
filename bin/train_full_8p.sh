#!/usr/bin/env bash
# Full training on 8 Ascend NPUs (HCCL), as ModelZoo's test/train_full_8p.sh (see modelzoo.sh).
exec "$(dirname "$0")/modelzoo.sh" full 8 "$@"
