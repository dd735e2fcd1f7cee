-- wrk script for portcullis (c) with distinct decisions: each request asks
-- for a different app of owner_a's workspace (rows bench.py adds to its
-- throwaway database), so that no two requests in flight share a decision
-- and portcullis' coalescing cannot fold them into one PostgreSQL query.
-- Usage: wrk ... -s distinct-apps.lua URL -- IDS_FILE   (one app id a line)
-- The -H headers (Authorization) go into every request via wrk.format.

local n = 0

function setup(thread)
   thread:set("thread_no", n)
   n = n + 1
end

local reqs = {}
local i = 0

function init(args)
   for id in io.lines(args[1]) do
      reqs[#reqs + 1] = wrk.format("GET", "/apps/" .. id .. "/logs")
   end
   -- threads start far apart in the list
   i = ((thread_no or 0) * 7919) % #reqs
end

function request()
   i = i + 1
   if i > #reqs then
      i = 1
   end
   return reqs[i]
end
