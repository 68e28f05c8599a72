#!/usr/bin/env bash
# Full 1-device training, as the seed's test/train_full_1p.sh (see modelzoo.sh).
exec "$(dirname "$0")/modelzoo.sh" full 1 "$@"
