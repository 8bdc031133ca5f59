-- wrk: POST a status event to a random one of the benchmark's cases, each with a new event id.
local counter = 0
local threads = 0
setup = function(thread)
    threads = threads + 1
    thread:set("prefix", "w" .. threads .. "-" .. os.time())
end
request = function()
    counter = counter + 1
    local case = math.random(1, tonumber(os.getenv("BENCH_CASES") or "1000000"))
    local body = '{"eventId": "' .. prefix .. "-" .. counter .. '", "statusType": "s4", "setAt": "2026-11-23T10:00:00Z",'
        .. ' "text": {"nl": "Bijgewerkt"}}'
    return wrk.format("POST", "/api/v1/department/cases/B-" .. case .. "/statuses",
        { ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"), ["Content-Type"] = "application/json" }, body)
end
