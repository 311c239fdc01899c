# Two set-up commands: `make run` and `make test`. Both create the virtualenv and install on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

NODE_STAMP := contracts/node_modules/.installed
RP_STAMP   := tests/integration/rp/node_modules/.installed

.PHONY: run test check lint typecheck bench clean contracts-deps rp-deps demo-vendor

$(STAMP): pyproject.toml sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# The resource-server SDK (sdk/python, its own distribution), with its Starlette and Redis extras (the
	# Redis DPoP replay store is tested against the local Redis).
	$(BIN)/pip install -q -e 'sdk/python[starlette,redis]'
	# siwe-py is our cross-check reference, not a runtime dependency; its metadata caps web3 below 8.
	$(BIN)/pip install -q --no-deps 'siwe==4.4.0'
	touch $(STAMP)

# The sample perps API (sdk/examples/perps_api, a resource server using the SDK) runs beside the server on
# PERPS_API_PORT (8100) and stops with it. It introspects as the development client perps-api, whose random
# secret `portcullis dev perps-api-secret` makes once in the data dir (refused, and never read, in production).
# The demo dApp (frontend-demo/) is served by the server at /demo/ and calls that API (CORS for the issuer).
run: $(STAMP)
	export PORTCULLIS_MODE=$${PORTCULLIS_MODE:-development}; \
	  secret=$${PERPS_API_CLIENT_SECRET:-$$($(BIN)/portcullis dev perps-api-secret)}; \
	  PERPS_API_PORT=$${PERPS_API_PORT:-8100} \
	  PERPS_API_ISSUER=$${PERPS_API_ISSUER:-$${PORTCULLIS_ISSUER:-http://127.0.0.1:$${PORTCULLIS_PORT:-8000}}} \
	  PERPS_API_CLIENT_ID=$${PERPS_API_CLIENT_ID:-perps-api} PERPS_API_CLIENT_SECRET="$$secret" \
	  PYTHONPATH=sdk/examples $(BIN)/python -m perps_api & trap "kill $$! 2>/dev/null" EXIT INT TERM; \
	  PORTCULLIS_DEMO_API_URL=$${PORTCULLIS_DEMO_API_URL:-http://127.0.0.1:$${PERPS_API_PORT:-8100}} \
	  $(BIN)/portcullis serve

# The contract tests need solc-js and anvil from npm. Without npm they are skipped with that reason.
contracts-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  if [ ! -f $(NODE_STAMP) ] || [ contracts/package-lock.json -nt $(NODE_STAMP) ]; then \
	    npm ci --prefix contracts --no-audit --no-fund && touch $(NODE_STAMP); fi; \
	else echo "npm not found: contract and chain tests will be skipped"; fi

# The browser end-to-end tests drive a certified FAPI 2.0 RP (openid-client) and Chromium (playwright-core)
# from Node. Without npm, or without /usr/bin/chromium, they are skipped with that reason.
rp-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  if [ ! -f $(RP_STAMP) ] || [ tests/integration/rp/package-lock.json -nt $(RP_STAMP) ]; then \
	    npm ci --prefix tests/integration/rp --no-audit --no-fund && touch $(RP_STAMP); fi; \
	else echo "npm not found: the openid-client and browser tests will be skipped"; fi

# The demo dApp's one library, oauth4webapi, is committed as npm publishes it (frontend-demo/vendor/, with its
# licence). This fetches that version again through npm (which checks the registry's integrity hash) and
# checks the files against the committed SHA256SUMS: run it to see that the vendored copy is untouched.
OAUTH4WEBAPI_VERSION := 3.8.8
demo-vendor:
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent oauth4webapi@$(OAUTH4WEBAPI_VERSION) >/dev/null && \
	  tar xzf oauth4webapi-$(OAUTH4WEBAPI_VERSION).tgz) && \
	  cp $$tmp/package/build/index.js frontend-demo/vendor/oauth4webapi.js && \
	  cp $$tmp/package/LICENSE.md frontend-demo/vendor/oauth4webapi.LICENSE.md && rm -rf $$tmp
	cd frontend-demo/vendor && sha256sum -c SHA256SUMS

test: $(STAMP) contracts-deps rp-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check app tests bench sdk
	$(BIN)/ruff format --check app tests bench sdk

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/siwe_verify.py
	$(BIN)/python bench/login_http.py
	$(BIN)/python bench/audit_log.py
	$(BIN)/python bench/revocation_delay.py
	$(BIN)/python bench/risk_overhead.py
	# Its Redis rows need the Redis at 127.0.0.1:6379 (skipped with a line saying so when it does not answer).
	$(BIN)/python bench/limiter_overhead.py
	# Needs wrk (apt-get install -y wrk) and node/npm; it runs `npm ci` in bench/peers/node-oidc-provider.
	$(BIN)/python bench/token_endpoint.py
	$(BIN)/python bench/bot_tokens.py
	$(BIN)/python bench/client_auth_timing.py
	# Needs node and redis-server; its signinwithethereum/oidc-provider column needs a local build under
	# bench/peers/siwe-oidc-provider/ (never committed) and is skipped with a line saying so without one.
	$(BIN)/python bench/login_code_flow.py
	$(BIN)/python bench/resource_validate.py
	# Workers 1, 2, 4 on PostgreSQL (PORTCULLIS_TEST_DATABASE_URL; skipped with a line saying so without it).
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/metrics_overhead.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
