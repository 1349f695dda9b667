-- cs457p2p.lua outside Wireshark, under plain Lua (5.4: what newer Wireshark builds
-- embed; tshark 4.0 here embeds 5.2), with stubs of the parts of Wireshark's API it
-- uses. Reads datagrams, one per line in hex, on stdin; writes for each the kind and
-- the decoded value of its first message and whether any is outside the pickle subset
-- (tab-separated), or ERROR and the error.
--
--     lua5.4 lua54_harness.lua cs457p2p.lua < datagrams.hex
local protos = {}
local Range = {}
Range.__index = Range
local function new_item()
  local item = { fields = {}, children = {} }
  function item:add(a, b, c)
    local child = new_item()
    if type(a) == "table" and a.abbr then self.fields[#self.fields + 1] = { a.abbr, c } end
    self.children[#self.children + 1] = child
    child.fields = self.fields  -- flatten into the message
    return child
  end
  function item:append_text() end
  function item:add_proto_expert_info() end
  return item
end
Proto = function(name, desc)
  local p = { name = name, prefs = setmetatable({}, { __newindex = function(t, k, v) rawset(t, k, v.default) end }) }
  function p:register_heuristic(list, fn) end
  protos[#protos + 1] = p
  return p
end
local function pf(abbr) return { abbr = abbr } end
ProtoField = { string = pf, uint8 = pf, int32 = pf, uint32 = pf, bool = pf }
ProtoExpert = { new = function() return {} end }
expert = { group = { SECURITY = 1, MALFORMED = 2, PROTOCOL = 3 }, severity = { ERROR = 1, WARN = 2 } }
Pref = { uint = function(_, d) return { default = d } end, bool = function(_, d) return { default = d } end }
Field = { new = function() return function() return nil end end }
DissectorTable = { get = function() return { add = function() end, remove = function() end } end }
DESEGMENT_ONE_MORE_SEGMENT = 0x0fffffff
dofile(arg[1])
local cs457 = protos[1]
local function tvb_of(bytes)
  local t = {}
  function t:len() return #bytes end
  function t:raw(o, l) return bytes:sub(o + 1, o + l) end
  return setmetatable(t, { __call = function(_, o, l) return { o, l } end })
end
for line in io.lines() do
  local bytes = line:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  local root = new_item()
  local pinfo = { src = "127.0.0.1", dst = "127.0.0.1", src_port = 20000, dst_port = 7777, cols = {} }
  local ok, err = pcall(cs457.dissector, tvb_of(bytes), pinfo, root)
  if not ok then
    print("ERROR\t" .. tostring(err))
  else
    local kind, decoded, outside = "", "", ""
    for _, f in ipairs(root.fields) do
      if f[1] == "cs457.kind" and kind == "" then kind = tostring(f[2]) end
      if f[1] == "cs457.decoded" and decoded == "" then decoded = tostring(f[2]) end
      if f[1] == "cs457.outside" then outside = "outside" end
    end
    print(kind .. "\t" .. decoded .. "\t" .. outside)
  end
end
