# The two commands: `make run` (the whole platform, locally) and `make test` (every test).
.PHONY: run test lint fmt validate fuzz bench bench-smoke heat ci

run:
	bash infra/scripts/install.sh
	npm --prefix web run --silent build
	cargo run -p switchboard-local -- up

test:
	bash infra/scripts/test.sh

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

validate:
	bash infra/scripts/install.sh --ci
	SAM_CLI_TELEMETRY=0 .local/venv/bin/sam validate --lint --region us-east-1

# The figures of docs/benchmarks.md (release build), and the same benchmarks once, small (CI).
bench:
	bash infra/scripts/bench.sh

bench-smoke:
	bash infra/scripts/bench.sh --smoke

# Partition heat at 10,000 msg/s: one workspace, then 100 (docs/scaling.md; ~35 minutes).
heat:
	bash infra/scripts/bench.sh --heat-only --heat-messages 1000

# Every parser's fuzz target, 60 s each (CI runs 15 s each).
fuzz:
	bash infra/scripts/fuzz.sh 60

ci: fmt lint validate test bench-smoke
