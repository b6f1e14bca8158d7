-- wrk script: POST the file $LOAD_BODY with content type $LOAD_TYPE and the key $LOAD_KEY.
-- wrk reports non-2xx answers and socket errors itself; `cargo xtask load` reads them.
local f = assert(io.open(os.getenv("LOAD_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("LOAD_TYPE")
wrk.headers["Ocp-Apim-Subscription-Key"] = os.getenv("LOAD_KEY")
