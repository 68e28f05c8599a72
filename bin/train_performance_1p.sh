#!/usr/bin/env bash
# 1000-step performance run, as the seed's test/train_performance_1p.sh (see modelzoo.sh).
exec "$(dirname "$0")/modelzoo.sh" performance 1 "$@"
