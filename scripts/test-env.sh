# Sourced by make: where the tests find the services that scripts/services.sh started.
export CROWDLEV_TEST_PG_URL="${CROWDLEV_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
export CROWDLEV_ANVIL_BIN="${CROWDLEV_ANVIL_BIN:-$PWD/tools/node_modules/.bin/anvil}"
