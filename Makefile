# The two commands: `make run` (the whole platform, locally) and `make test` (every test).
.PHONY: run test lint fmt validate ci

run:
	bash infra/scripts/install.sh
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

ci: fmt lint validate test
