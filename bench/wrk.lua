-- Licensed under the Apache License, Version 2.0 (the "License");
-- you may not use this file except in compliance with the License.
-- You may obtain a copy of the License at
--
--     http://www.apache.org/licenses/LICENSE-2.0
--
-- Unless required by applicable law or agreed to in writing, software
-- distributed under the License is distributed on an "AS IS" BASIS,
-- WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
-- See the License for the specific language governing permissions and
-- limitations under the License.

-- wrk script of the benchmark (bench/bench.py runs it with one thread).
--
--   wrk ... -s bench/wrk.lua URL -- post POOL FIRST
--       POSTs the messages of a pool file (bench/messages.py) in order from
--       number FIRST, each once, and classifies every CertRep by its
--       pkiStatus; when the pool runs out it starts again and counts the
--       repeats (they are not new enrollments).
--   wrk ... -s bench/wrk.lua URL -- get
--       GETs URL and counts the answers by HTTP status.
--
-- done() prints one line "bench-wrk {json}" with the counts and latencies.

local mode, requests, next_index
-- globals: done() reads them from each thread with thread:get()
sent, repeats = 0, 0
counts = {success = 0, failure = 0, pending = 0, unclassified = 0, http_error = 0}

-- pkiStatus attribute: its OID, then SET { PrintableString of one digit }
local PKI_STATUS = "\6\10\96\134\72\1\134\248\69\1\9\3\49\3\19\1"
local STATUS_NAMES = {["0"] = "success", ["2"] = "failure", ["3"] = "pending"}

local function read_pool(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    local list, pos = {}, 1
    while pos + 3 <= #data do
        local a, b, c, d = data:byte(pos, pos + 3)
        local len = ((a * 256 + b) * 256 + c) * 256 + d
        list[#list + 1] = data:sub(pos + 4, pos + 3 + len)
        pos = pos + 4 + len
    end
    return list
end

function init(args)
    mode = args[1]
    if mode == "post" then
        local headers = {["Content-Type"] = "application/x-pki-message"}
        requests = {}
        for i, der in ipairs(read_pool(args[2])) do
            requests[i] = wrk.format("POST", nil, headers, der)
        end
        next_index = tonumber(args[3]) + 1
    end
end

function request()
    sent = sent + 1
    if mode ~= "post" then
        return wrk.request()
    end
    if next_index > #requests then
        next_index = 1
    end
    if sent > #requests then
        repeats = repeats + 1
    end
    local req = requests[next_index]
    next_index = next_index + 1
    return req
end

function response(status, headers, body)
    if status ~= 200 then
        counts.http_error = counts.http_error + 1
        return
    end
    if mode ~= "post" then
        counts.success = counts.success + 1
        return
    end
    local at = body:find(PKI_STATUS, 1, true)
    local name = at and STATUS_NAMES[body:sub(at + #PKI_STATUS, at + #PKI_STATUS)]
    name = name or "unclassified"
    counts[name] = counts[name] + 1
end

local threads = {}

function setup(thread)
    threads[#threads + 1] = thread
end

function done(summary, latency, requests_)
    local total = {sent = 0, repeats = 0}
    for name in pairs(counts) do
        total[name] = 0
    end
    for _, t in ipairs(threads) do
        total.sent = total.sent + t:get("sent")
        total.repeats = total.repeats + t:get("repeats")
        local c = t:get("counts")
        for name in pairs(counts) do
            total[name] = total[name] + c[name]
        end
    end
    local e = summary.errors
    local parts = {}
    local function put(k, v)
        parts[#parts + 1] = string.format("%q: %s", k, v)
    end
    for k, v in pairs(total) do
        put(k, v)
    end
    put("responses", summary.requests)
    put("duration_us", summary.duration)
    put("socket_errors", e.connect + e.read + e.write + e.timeout)
    put("p50_us", latency:percentile(50))
    put("p99_us", latency:percentile(99))
    put("max_us", latency.max)
    io.write("bench-wrk {" .. table.concat(parts, ", ") .. "}\n")
end
