-- The SPECweb96-like file mix for wrk: every request asks the bench web
-- server (tools/web-server.ts) for a body of a size drawn from SPECweb96's
-- four classes, each on a new TCP connection ("Connection: close"), since dpr
-- routes connections, not requests.
--
--   class  sizes                 share
--   0      0.1 - 0.9 KB          35%
--   1      1 - 9 KB              50%
--   2      10 - 90 KB            14%
--   3      100 - 900 KB           1%
--
-- Within a class one of its nine files (1..9 tenths of the class's decade) is
-- picked uniformly; SPECweb96 weighs them unevenly, which changes the mean
-- little. `wrk ... -s specweb96.lua URL -- SEED` seeds the draw so runs repeat.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local classes = {
  { share = 0.35, unit = 102 },
  { share = 0.50, unit = 1024 },
  { share = 0.14, unit = 10240 },
  { share = 0.01, unit = 102400 },
}

served = {}

-- `-- SEED gzip` also asks for compressed responses (Accept-Encoding), so a
-- server does CPU work per request, as for dynamic content.
local headers = { ["Connection"] = "close" }

function init(args)
  math.randomseed(tonumber(args[1]) or 1)
  if args[2] == "gzip" then headers["Accept-Encoding"] = "gzip" end
end

local function size()
  local r = math.random()
  for _, c in ipairs(classes) do
    if r < c.share then return c.unit * math.random(1, 9) end
    r = r - c.share
  end
  return classes[#classes].unit * math.random(1, 9)
end

function request()
  return wrk.format("GET", "/?size=" .. size(), headers)
end

function response(status, headers, body)
  local host = headers["x-served-by"] or "?"
  served[host] = (served[host] or 0) + 1
end
