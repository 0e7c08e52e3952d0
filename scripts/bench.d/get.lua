-- wrk: GET with an API key (BENCH_KEY).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
