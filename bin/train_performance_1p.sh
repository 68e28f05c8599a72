#!/usr/bin/env bash
# 1000-step performance run, as the seed's test/train_performance_1p.sh (see modelzoo_1p.sh).
exec "$(dirname "$0")/modelzoo_1p.sh" performance "$@"
