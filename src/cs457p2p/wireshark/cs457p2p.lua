-- cs457p2p.lua: a Wireshark dissector for the cs457 P2P protocol, Parts 1 and 2.
--
-- Shipped with the cs457p2p Python package: `cs457p2p wireshark` prints where this
-- file is; `cs457p2p wireshark --install` copies it into Wireshark's personal Lua
-- plugins folder. For one run:
--
--     tshark -X lua_script:cs457p2p.lua -r capture.pcapng -Y cs457
--
-- What it reads:
--  * Part 1: the 8 raw bytes REGISTER, positions (pickled, or ASCII digits), N, the
--    (SEQNUM, VALUE) answers and 'Bad request'; several messages in one segment, and
--    one message split over several segments (reassembled); over TCP and UDP.
--  * Part 2: the pickled tuples ECHO, REGISTER, REG_INIT, UPDATE_NBR, PING, ACK, QUERY,
--    QUERY_RESULT, HELD, and the replies ('[Tracker]', text).
--
-- Pickles are read here, never run: protocols 0 to 5, the opcodes of ints, floats,
-- strings, bytes, None, bools, tuples, lists, the memo, FRAME, PROTO and STOP. A pickle
-- with an opcode that makes Python's unpickler import or call something (GLOBAL,
-- STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ...) is shown as the call it would
-- make and flagged: the field cs457.dangerous and an expert error.
--
-- Ports: 7777 over TCP and UDP, the course's (the preference cs457.server_port).
-- Elsewhere a heuristic takes a conversation whose first bytes are REGISTER or whole
-- pickles of protocol messages; the address and port that received them are then read
-- as cs457 for the rest of the capture.
--
-- Lua 5.2 to 5.4 alike (Wireshark builds embed one or the other): no bit operators,
-- lengths read as floats, integers as plain numbers (exact below 2^53; larger ones are
-- kept as decimal text). Tested with tshark 4.0 (Lua 5.2), and under plain Lua 5.4
-- with stubs of Wireshark's API (the project's tests/lua54_harness.lua).

local cs457 = Proto("cs457", "cs457 P2P protocol")

if set_plugin_info then
    set_plugin_info({
        version = "0.1.0",
        description = "cs457 P2P protocol (Parts 1 and 2), pickles decoded safely",
        author = "cs457p2p",
    })
end

local DEFAULT_PORT = 7777
local MAX_MESSAGE = 1048576 -- longest message read (the client's limit on one answer)
local MAX_DEPTH = 16 -- tuples and lists nested deeper are refused
local MAX_DIGITS = 4300 -- longest integer literal (protocol 0), as Python's default
local MAX_LONG_BYTES = 1785 -- longest binary integer (LONG1/LONG4)
local MAX_ASCII_DIGITS = 20 -- longest ASCII position
local OPCODES_SHOWN = 64 -- opcodes listed per message
local SHOWN = 100 -- characters of a value in a summary

---------------------------------------------------------------------------- fields

local F = {
    kind = ProtoField.string("cs457.kind", "Kind"),
    part = ProtoField.uint8("cs457.part", "Part"),
    role = ProtoField.string("cs457.role", "Role"),
    encoding = ProtoField.string("cs457.encoding", "Encoding"),
    protocol = ProtoField.uint8("cs457.pickle_protocol", "Pickle protocol"),
    decoded = ProtoField.string("cs457.decoded", "Value"),
    command = ProtoField.string("cs457.command", "Command"),
    position = ProtoField.int32("cs457.position", "Position"),
    n = ProtoField.int32("cs457.n", "N (number of items)"),
    seqnum = ProtoField.int32("cs457.seqnum", "SEQNUM"),
    value = ProtoField.string("cs457.value", "VALUE"),
    handle = ProtoField.string("cs457.handle", "Handle"),
    ip = ProtoField.string("cs457.ip", "IP"),
    port = ProtoField.int32("cs457.port", "Port"),
    stamp = ProtoField.string("cs457.stamp", "PING time stamp"),
    count = ProtoField.int32("cs457.count", "Items held"),
    sender = ProtoField.string("cs457.sender", "Sender"),
    text = ProtoField.string("cs457.text", "Text"),
    dangerous = ProtoField.bool("cs457.dangerous", "Dangerous: would run code if unpickled"),
    dangerous_opcode = ProtoField.string("cs457.dangerous_opcode", "Opcode that runs code"),
    outside = ProtoField.string("cs457.outside", "Outside the protocol's pickle subset"),
    error = ProtoField.string("cs457.error", "Not a message"),
    opcode = ProtoField.string("cs457.opcode", "Opcode"),
    length = ProtoField.uint32("cs457.length", "Message length"),
}
local field_list = {}
for _, field in pairs(F) do
    field_list[#field_list + 1] = field
end
cs457.fields = field_list

local E = {
    dangerous = ProtoExpert.new(
        "cs457.dangerous.expert",
        "Pickle would run code when unpickled",
        expert.group.SECURITY,
        expert.severity.ERROR
    ),
    malformed = ProtoExpert.new(
        "cs457.malformed",
        "Not a cs457 message",
        expert.group.MALFORMED,
        expert.severity.ERROR
    ),
    outside = ProtoExpert.new(
        "cs457.outside.expert",
        "Pickle outside the protocol's subset",
        expert.group.PROTOCOL,
        expert.severity.WARN
    ),
    other = ProtoExpert.new(
        "cs457.other",
        "A pickle, but no message of the protocol",
        expert.group.PROTOCOL,
        expert.severity.WARN
    ),
}
cs457.experts = { E.dangerous, E.malformed, E.outside, E.other }

cs457.prefs.server_port =
    Pref.uint("Server port", DEFAULT_PORT, "TCP and UDP port of the tracker (the course's: 7777)")
cs457.prefs.opcodes = Pref.bool("Show pickle opcodes", true, "List each message's pickle opcodes")

local f_tcp_stream = Field.new("tcp.stream")
local f_udp_stream = Field.new("udp.stream")

------------------------------------------------------------------------ values
-- A decoded value is a table {k = kind, ...}: none, bool (v), int (v: a number or nil
-- when too large to be exact; text: decimal), float (v), str (v: UTF-8 text), bytes (v),
-- tuple/list/set/frozenset (items), dict (items: key, value, key, value...), and what a
-- dangerous pickle would build: global (v: "module.name"), call (f, args), build (obj,
-- state), persid (v), ext (v), bytearray (v), buffer.

local NONE = { k = "none" }
local TRUE = { k = "bool", v = true }
local FALSE = { k = "bool", v = false }

local function int_from_number(num)
    return { k = "int", v = num, text = string.format("%d", num) }
end

-- An integer from its decimal text (no exact number beyond 15 digits).
local function int_from_text(text)
    local sign, digits = text:match("^%s*([+-]?)(%d+)%s*$")
    if not digits then
        return nil
    end
    digits = digits:gsub("^0+(%d)", "%1")
    if sign == "+" then
        sign = ""
    end
    if digits == "0" then
        sign = ""
    end
    local num = nil
    if #digits <= 15 then
        num = tonumber(digits)
        if sign == "-" then
            num = -num
        end
    end
    return { k = "int", v = num, text = sign .. digits }
end

-- The decimal text of a little-endian two's complement integer (bytes as numbers).
local function int_from_le_bytes(bytes)
    local size = #bytes
    if size == 0 then
        return int_from_number(0)
    end
    local negative = bytes[size] >= 128
    if size <= 6 then
        local num = 0
        for j = size, 1, -1 do
            num = num * 256 + bytes[j]
        end
        if negative then
            num = num - 2 ^ (8 * size)
        end
        return int_from_number(num)
    end
    -- magnitude, big-endian, then repeated division by 10
    local mag = {}
    for j = size, 1, -1 do
        mag[#mag + 1] = bytes[j]
    end
    if negative then
        local carry = 1
        for j = #mag, 1, -1 do
            local b = (255 - mag[j]) + carry
            mag[j] = b % 256
            carry = math.floor(b / 256)
        end
    end
    local digits = {}
    local nonzero = true
    while nonzero do
        nonzero = false
        local rem = 0
        for j = 1, #mag do
            local cur = rem * 256 + mag[j]
            mag[j] = math.floor(cur / 10)
            rem = cur % 10
            if mag[j] ~= 0 then
                nonzero = true
            end
        end
        digits[#digits + 1] = string.char(48 + rem)
    end
    local text = string.reverse(table.concat(digits))
    return { k = "int", v = nil, text = (negative and "-" or "") .. text }
end

local function utf8_encode(cp)
    if cp < 0x80 then
        return string.char(cp)
    elseif cp < 0x800 then
        return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
    elseif cp < 0x10000 then
        return string.char(
            0xE0 + math.floor(cp / 0x1000),
            0x80 + math.floor(cp / 0x40) % 0x40,
            0x80 + cp % 0x40
        )
    end
    return string.char(
        0xF0 + math.floor(cp / 0x40000),
        0x80 + math.floor(cp / 0x1000) % 0x40,
        0x80 + math.floor(cp / 0x40) % 0x40,
        0x80 + cp % 0x40
    )
end

-- Is `s` valid UTF-8 (surrogates allowed, as Python's "surrogatepass")?
local function utf8_valid(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local extra
        if c < 0x80 then
            extra = 0
        elseif c >= 0xC2 and c <= 0xDF then
            extra = 1
        elseif c >= 0xE0 and c <= 0xEF then
            extra = 2
        elseif c >= 0xF0 and c <= 0xF4 then
            extra = 3
        else
            return false
        end
        if i + extra > n then
            return false
        end
        for j = i + 1, i + extra do
            local d = s:byte(j)
            if d < 0x80 or d > 0xBF then
                return false
            end
        end
        if extra == 2 then
            local d = s:byte(i + 1)
            if c == 0xE0 and d < 0xA0 then
                return false
            end
        elseif extra == 3 then
            local d = s:byte(i + 1)
            if (c == 0xF0 and d < 0x90) or (c == 0xF4 and d > 0x8F) then
                return false
            end
        end
        i = i + extra + 1
    end
    return true
end

local function latin1_to_utf8(s)
    return (s:gsub("[\128-\255]", function(ch)
        return utf8_encode(ch:byte())
    end))
end

-- A Python 2 byte string as text, as the project's decoder reads it: UTF-8 when valid,
-- else latin-1.
local function py2_text(raw)
    if utf8_valid(raw) then
        return raw
    end
    return latin1_to_utf8(raw)
end

local ESCAPES = {
    ["\\"] = "\\",
    ["'"] = "'",
    ['"'] = '"',
    a = "\a",
    b = "\b",
    f = "\f",
    n = "\n",
    r = "\r",
    t = "\t",
    v = "\v",
    ["\n"] = "",
}

-- The body of a Python 2 string literal (protocol 0 STRING), unescaped; nil if bad.
local function unescape_py2(body)
    if not body:find("\\", 1, true) then
        return body
    end
    local out, i, n = {}, 1, #body
    while i <= n do
        local c = body:sub(i, i)
        if c ~= "\\" then
            out[#out + 1] = c
            i = i + 1
        else
            local e = body:sub(i + 1, i + 1)
            if e == "" then
                return nil
            elseif ESCAPES[e] then
                out[#out + 1] = ESCAPES[e]
                i = i + 2
            elseif e == "x" then
                local hex = body:sub(i + 2, i + 3)
                if not hex:match("^%x%x$") then
                    return nil
                end
                out[#out + 1] = string.char(tonumber(hex, 16))
                i = i + 4
            elseif e:match("[0-7]") then
                local oct = body:match("^[0-7][0-7]?[0-7]?", i + 1)
                out[#out + 1] = string.char(tonumber(oct, 8) % 256)
                i = i + 1 + #oct
            else
                return nil -- (Python warns; the project's decoder refuses)
            end
        end
    end
    return table.concat(out)
end

-- Protocol 0 UNICODE: raw-unicode-escape (\uXXXX, \UXXXXXXXX; other bytes latin-1).
local function raw_unicode_escape(body)
    local out, i, n = {}, 1, #body
    while i <= n do
        local c = body:byte(i)
        if c == 0x5C and (body:sub(i + 1, i + 1) == "u" or body:sub(i + 1, i + 1) == "U") then
            local width = body:sub(i + 1, i + 1) == "u" and 4 or 8
            local hex = body:sub(i + 2, i + 1 + width)
            if #hex ~= width or not hex:match("^%x+$") then
                return nil
            end
            local cp = tonumber(hex, 16)
            if cp > 0x10FFFF then
                return nil
            end
            out[#out + 1] = utf8_encode(cp)
            i = i + 2 + width
        else
            out[#out + 1] = utf8_encode(c)
            i = i + 1
        end
    end
    return table.concat(out)
end

local function float_repr(x)
    if x ~= x then
        return "nan"
    elseif x == math.huge then
        return "inf"
    elseif x == -math.huge then
        return "-inf"
    end
    local text
    for digits = 1, 17 do
        text = string.format("%." .. digits .. "g", x)
        if tonumber(text) == x then
            break
        end
    end
    if not text:find("[.eEn]") then
        text = text .. ".0"
    end
    return text
end

-- Python's repr of a str (UTF-8 text, surrogates allowed) or, with `is_bytes`, of
-- bytes: what Python escapes in the Latin-1 range (C1 controls, no-break space, soft
-- hyphen) and surrogates are escaped too; other characters are shown as they are.
local function quote(s, is_bytes)
    local q = "'"
    if s:find("'", 1, true) and not s:find('"', 1, true) then
        q = '"'
    end
    local out = {}
    local j, n = 1, #s
    while j <= n do
        local c = s:byte(j)
        local ch = s:sub(j, j)
        local c2 = s:byte(j + 1)
        if not is_bytes and c == 0xC2 and c2 and (c2 <= 0xA0 or c2 == 0xAD) then
            out[#out + 1] = string.format("\\x%02x", c2)
            j = j + 1
        elseif not is_bytes and c == 0xED and c2 and c2 >= 0xA0 and c2 <= 0xBF then
            local cp = 0xD000 + (c2 - 0x80) * 64 + ((s:byte(j + 2) or 0x80) - 0x80)
            out[#out + 1] = string.format("\\u%04x", cp)
            j = j + 2
        elseif ch == "\\" then
            out[#out + 1] = "\\\\"
        elseif ch == q then
            out[#out + 1] = "\\" .. q
        elseif c == 10 then
            out[#out + 1] = "\\n"
        elseif c == 13 then
            out[#out + 1] = "\\r"
        elseif c == 9 then
            out[#out + 1] = "\\t"
        elseif c < 0x20 or c == 0x7F or (is_bytes and c >= 0x80) then
            out[#out + 1] = string.format("\\x%02x", c)
        else
            out[#out + 1] = ch
        end
        j = j + 1
    end
    return (is_bytes and "b" or "") .. q .. table.concat(out) .. q
end

-- Cut `text` to at most `limit` bytes, on a UTF-8 character boundary, with "...".
local function cut(text, limit)
    if #text <= limit then
        return text
    end
    local stop = limit - 3
    while stop > 0 and text:byte(stop + 1) and text:byte(stop + 1) >= 0x80
        and text:byte(stop + 1) < 0xC0 do
        stop = stop - 1
    end
    return text:sub(1, stop) .. "..."
end

-- Python's repr of a decoded value, at most `limit` characters.
local function repr(value, limit)
    limit = limit or SHOWN
    local out, size = {}, 0
    local function put(text)
        if size <= limit then
            out[#out + 1] = text
            size = size + #text
        end
    end
    local walk
    local function items(list, open, close, single)
        put(open)
        for j, item in ipairs(list) do
            if size > limit then
                return
            end
            if j > 1 then
                put(", ")
            end
            walk(item)
        end
        put((single and #list == 1) and ",)" or close)
    end
    walk = function(v)
        if size > limit then
            return
        end
        local k = v.k
        if k == "none" then
            put("None")
        elseif k == "bool" then
            put(v.v and "True" or "False")
        elseif k == "int" then
            put(v.text)
        elseif k == "float" then
            put(float_repr(v.v))
        elseif k == "str" then
            put(quote(v.v, false))
        elseif k == "bytes" then
            put(quote(v.v, true))
        elseif k == "tuple" then
            items(v.items, "(", ")", true)
        elseif k == "list" then
            items(v.items, "[", "]", false)
        elseif k == "set" then
            items(v.items, "{", "}", false)
        elseif k == "frozenset" then
            items(v.items, "frozenset({", "})", false)
        elseif k == "dict" then
            put("{")
            for j = 1, #v.items, 2 do
                if j > 1 then
                    put(", ")
                end
                walk(v.items[j])
                put(": ")
                walk(v.items[j + 1])
            end
            put("}")
        elseif k == "global" then
            put(v.v)
        elseif k == "call" then
            walk(v.f)
            if v.args.k == "tuple" then
                items(v.args.items, "(", ")", false)
            else
                put("(*")
                walk(v.args)
                put(")")
            end
        elseif k == "build" then
            walk(v.obj)
            put(".__setstate__(")
            walk(v.state)
            put(")")
        elseif k == "persid" then
            put("persistent_load(" .. quote(v.v, false) .. ")")
        elseif k == "ext" then
            put("copyreg extension " .. v.v)
        elseif k == "bytearray" then
            put("bytearray(" .. quote(v.v, true) .. ")")
        else
            put("<out-of-band buffer>")
        end
    end
    walk(value)
    return cut(table.concat(out), limit)
end

------------------------------------------------------------------------ pickles

local SEP = { [0x20] = true, [0x09] = true, [0x0D] = true, [0x0A] = true }
local DIGIT = {}
for c = 0x30, 0x39 do
    DIGIT[c] = true
end

local NAMES = {
    [0x28] = "MARK", [0x2E] = "STOP", [0x30] = "POP", [0x31] = "POP_MARK", [0x32] = "DUP",
    [0x46] = "FLOAT", [0x49] = "INT", [0x4A] = "BININT", [0x4B] = "BININT1",
    [0x4C] = "LONG", [0x4D] = "BININT2", [0x4E] = "NONE", [0x50] = "PERSID",
    [0x51] = "BINPERSID", [0x52] = "REDUCE", [0x53] = "STRING", [0x54] = "BINSTRING",
    [0x55] = "SHORT_BINSTRING", [0x56] = "UNICODE", [0x58] = "BINUNICODE",
    [0x61] = "APPEND", [0x62] = "BUILD", [0x63] = "GLOBAL", [0x64] = "DICT",
    [0x7D] = "EMPTY_DICT", [0x65] = "APPENDS", [0x67] = "GET", [0x68] = "BINGET",
    [0x69] = "INST", [0x6A] = "LONG_BINGET", [0x6C] = "LIST", [0x5D] = "EMPTY_LIST",
    [0x6F] = "OBJ", [0x70] = "PUT", [0x71] = "BINPUT", [0x72] = "LONG_BINPUT",
    [0x73] = "SETITEM", [0x74] = "TUPLE", [0x29] = "EMPTY_TUPLE", [0x75] = "SETITEMS",
    [0x47] = "BINFLOAT", [0x80] = "PROTO", [0x81] = "NEWOBJ", [0x82] = "EXT1",
    [0x83] = "EXT2", [0x84] = "EXT4", [0x85] = "TUPLE1", [0x86] = "TUPLE2",
    [0x87] = "TUPLE3", [0x88] = "NEWTRUE", [0x89] = "NEWFALSE", [0x8A] = "LONG1",
    [0x8B] = "LONG4", [0x42] = "BINBYTES", [0x43] = "SHORT_BINBYTES",
    [0x8C] = "SHORT_BINUNICODE", [0x8D] = "BINUNICODE8", [0x8E] = "BINBYTES8",
    [0x8F] = "EMPTY_SET", [0x90] = "ADDITEMS", [0x91] = "FROZENSET", [0x92] = "NEWOBJ_EX",
    [0x93] = "STACK_GLOBAL", [0x94] = "MEMOIZE", [0x95] = "FRAME", [0x96] = "BYTEARRAY8",
    [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
}

-- Opcodes protocol 1 brought (binary ones): a pickle without PROTO that has one is
-- protocol 1, else protocol 0 (all text: what Python 2 writes by default).
local PROTOCOL1 = {}
for _, op in ipairs({ 0x4A, 0x4B, 0x4D, 0x54, 0x55, 0x58, 0x47, 0x29, 0x5D, 0x7D, 0x65,
    0x75, 0x71, 0x72, 0x68, 0x6A, 0x51, 0x31, 0x6F }) do
    PROTOCOL1[op] = true
end

-- (in floats: Lua 5.4's 64-bit integers would wrap an 8-byte length to a negative one)
local function le_uint(s, at, width)
    local num = 0.0
    for j = at + width - 1, at, -1 do
        num = num * 256.0 + s:byte(j)
    end
    return num
end

local function le_int32(s, at)
    local num = le_uint(s, at, 4)
    if num >= 2147483648 then
        num = num - 4294967296
    end
    return num
end

local function be_double(s, at)
    local b = { s:byte(at, at + 7) }
    local sign = b[1] >= 128 and -1 or 1
    local exp = (b[1] % 128) * 16 + math.floor(b[2] / 16)
    local mant = b[2] % 16
    for j = 3, 8 do
        mant = mant * 256 + b[j]
    end
    if exp == 2047 then
        if mant == 0 then
            return sign * math.huge
        end
        return 0 / 0
    elseif exp == 0 then
        return sign * mant * 2 ^ -1074
    end
    return sign * (1 + mant / 2 ^ 52) * 2 ^ (exp - 1023)
end

local function is_container(v)
    return v.k == "tuple" or v.k == "list" or v.k == "dict" or v.k == "set"
end

local function depth_of(v)
    if v.items then
        return v.depth or 1
    end
    return 0
end

-- Read the pickle starting at s[i0]. Returns a table:
--   status   "ok", "incomplete" (it runs past the end of s) or "bad"
--   value    the decoded value (ok)
--   stop     the index of its last byte (ok)
--   protocol the PROTO it declares; without one, 1 if it has a binary opcode, else 0
--   ops      {at, len, text} of each opcode, for the tree (at most OPCODES_SHOWN)
--   nops     how many opcodes were read
--   reason, at   why it is bad, and where (an index of s)
--   need     (incomplete) the least length, from i0, that could complete it
--   dangerous {at, len, op, text}: the first opcode that would run code
--   outside  what is outside the protocol's subset (a dict, a set...), if anything
local function parse_pickle(s, i0)
    local n = #s
    local limit = i0 + MAX_MESSAGE -- first index past the longest message
    local r = { ops = {}, nops = 0 }
    local stack, marks, memo, memo_len = {}, {}, {}, 0
    local pos = i0

    local function stop(status, reason, at, need)
        error({ cs457 = true, status = status, reason = reason, at = at, need = need }, 0)
    end
    local function need(count, at)
        local e = at + count
        if e > limit then
            stop("bad", string.format("a length of %.0f bytes runs past the limit of 1 MiB", count), at)
        end
        if e - 1 > n then
            stop("incomplete", nil, at, e - i0)
        end
        return e
    end
    local function line(at, max_len)
        local nl = s:find("\n", at, true)
        if not nl then
            if n - at + 1 > max_len then
                stop("bad", "a text argument longer than " .. max_len .. " bytes", at)
            end
            stop("incomplete", nil, at)
        end
        if nl - at > max_len then
            stop("bad", "a text argument longer than " .. max_len .. " bytes", at)
        end
        return s:sub(at, nl - 1), nl + 1
    end
    local function log(at, text)
        r.nops = r.nops + 1
        if #r.ops < OPCODES_SHOWN then
            r.ops[#r.ops + 1] = { at = at, len = pos - at, text = text }
        end
    end
    -- Code runs only once something is imported (GLOBAL, STACK_GLOBAL, INST, EXT):
    -- REDUCE, BUILD, OBJ and NEWOBJ call what is on the stack, and before an import
    -- that is a plain value the unpickler fails on. The first import flags the pickle;
    -- every opcode that imports or calls is listed from there (r.code_ops).
    local function danger(at, name, what)
        if not r.dangerous then
            r.dangerous = { at = at, op = name, text = what }
            r.code_ops = {}
        end
        r.code_ops[#r.code_ops + 1] = { at = at, op = name }
    end
    local function call(at, name)
        if r.dangerous then
            r.code_ops[#r.code_ops + 1] = { at = at, op = name }
        end
    end
    local function outside(what)
        r.outside = r.outside or what
    end
    local function push(v)
        stack[#stack + 1] = v
    end
    local function floor()
        return marks[#marks] or 0
    end
    local function pop(at, name)
        if #stack <= floor() then
            stop("bad", name .. " with nothing on the stack", at)
        end
        local v = stack[#stack]
        stack[#stack] = nil
        return v
    end
    local function top(at, name)
        if #stack <= floor() then
            stop("bad", name .. " with nothing on the stack", at)
        end
        return stack[#stack]
    end
    local function pop_mark(at, name)
        if #marks == 0 then
            stop("bad", name .. " without a MARK", at)
        end
        local m = marks[#marks]
        marks[#marks] = nil
        local items = {}
        for j = m + 1, #stack do
            items[#items + 1] = stack[j]
        end
        for j = #stack, m + 1, -1 do
            stack[j] = nil
        end
        return items
    end
    local function container(kind, list, at)
        local d = 0
        for _, item in ipairs(list) do
            local di = depth_of(item)
            if di > d then
                d = di
            end
        end
        if d + 1 > MAX_DEPTH then
            stop("bad", "nesting deeper than " .. MAX_DEPTH, at)
        end
        return { k = kind, items = list, depth = d + 1 }
    end
    local function extend(target, list, at, name, kind)
        if target.k ~= kind then
            stop("bad", name .. " to something that is not a " .. kind, at)
        end
        local d = target.depth or 1
        for _, item in ipairs(list) do
            target.items[#target.items + 1] = item
            if depth_of(item) + 1 > d then
                d = depth_of(item) + 1
            end
        end
        if d > MAX_DEPTH then
            stop("bad", "nesting deeper than " .. MAX_DEPTH, at)
        end
        target.depth = d
    end
    local function index_of(text, at)
        local v = int_from_text(text)
        if not v or not v.v then
            stop("bad", "a bad memo index", at)
        end
        return v.v
    end
    local function put(index, at, name)
        if #stack <= floor() then
            stop("bad", name .. " with nothing on the stack", at)
        end
        if memo[index] == nil then
            memo_len = memo_len + 1
        end
        memo[index] = stack[#stack]
    end
    local function get(index, at)
        local v = memo[index]
        if v == nil then
            stop("bad", "memo GET of unknown index " .. index, at)
        end
        if v.items and #v.items > 0 then
            stop("bad", "a second reference to a container (refused: it can build cycles)", at)
        end
        push(v)
    end
    local function text_arg(raw)
        return py2_text(raw)
    end

    local function run()
        while true do
            if pos >= limit then
                stop("bad", "a pickle longer than 1 MiB", pos)
            end
            if pos > n then
                stop("incomplete", nil, pos, pos - i0 + 1)
            end
            local op = s:byte(pos)
            local at = pos
            local name = NAMES[op] or string.format("0x%02x", op)
            pos = pos + 1
            if PROTOCOL1[op] then
                r.binary = true
            end
            if op == 0x2E then -- STOP
                if #marks > 0 or #stack ~= 1 then
                    stop("bad", "STOP with an unbalanced stack", at)
                end
                log(at, name)
                r.status, r.value, r.stop = "ok", stack[1], pos - 1
                if r.protocol == nil then
                    r.protocol = r.binary and 1 or 0
                end
                return
            elseif op == 0x80 then -- PROTO
                pos = need(1, pos)
                local proto = s:byte(at + 1)
                if proto > 5 then
                    stop("bad", "unsupported pickle protocol " .. proto, at)
                end
                if r.protocol == nil then
                    r.protocol = proto
                end
                log(at, name .. " " .. proto)
            elseif op == 0x95 then -- FRAME
                pos = need(8, pos)
                local size = le_uint(s, at + 1, 8)
                if size > MAX_MESSAGE then
                    stop("bad", string.format("a frame of %.0f bytes (more than 1 MiB)", size), at)
                end
                log(at, name .. " " .. string.format("%d", size))
            elseif op == 0x28 then -- MARK
                marks[#marks + 1] = #stack
                log(at, name)
            elseif op == 0x4B or op == 0x4D or op == 0x4A then -- BININT1, BININT2, BININT
                local width = op == 0x4B and 1 or (op == 0x4D and 2 or 4)
                pos = need(width, pos)
                local num = width == 4 and le_int32(s, at + 1) or le_uint(s, at + 1, width)
                push(int_from_number(num))
                log(at, name .. " " .. string.format("%d", num))
            elseif op == 0x8A or op == 0x8B then -- LONG1, LONG4
                local width = op == 0x8A and 1 or 4
                pos = need(width, pos)
                local size = width == 1 and s:byte(at + 1) or le_int32(s, at + 1)
                if size < 0 then
                    stop("bad", "a negative LONG length", at)
                end
                if size > MAX_LONG_BYTES then
                    stop("bad", "an integer of " .. size .. " bytes", at)
                end
                pos = need(size, pos)
                local v = int_from_le_bytes({ s:byte(at + 1 + width, pos - 1) })
                push(v)
                log(at, name .. " " .. v.text)
            elseif op == 0x49 or op == 0x4C then -- INT, LONG (protocol 0)
                local text
                text, pos = line(pos, MAX_DIGITS + 1)
                if op == 0x49 and text == "00" then
                    push(FALSE)
                elseif op == 0x49 and text == "01" then
                    push(TRUE)
                else
                    if op == 0x4C then
                        text = text:gsub("L$", "")
                    end
                    local v = int_from_text(text)
                    if not v then
                        stop("bad", "a bad integer literal", at)
                    end
                    push(v)
                end
                log(at, name .. " " .. text)
            elseif op == 0x46 then -- FLOAT
                local text
                text, pos = line(pos, MAX_DIGITS)
                local low = text:lower():gsub("^%s+", ""):gsub("%s+$", "")
                local x
                if low == "inf" or low == "+inf" or low == "infinity" then
                    x = math.huge
                elseif low == "-inf" or low == "-infinity" then
                    x = -math.huge
                elseif low == "nan" or low == "+nan" or low == "-nan" then
                    x = 0 / 0
                else
                    x = tonumber(low)
                end
                if not x or low:find("^0x") then
                    stop("bad", "a bad float literal", at)
                end
                push({ k = "float", v = x })
                log(at, name .. " " .. text)
            elseif op == 0x47 then -- BINFLOAT
                pos = need(8, pos)
                local x = be_double(s, at + 1)
                push({ k = "float", v = x })
                log(at, name .. " " .. float_repr(x))
            elseif op == 0x4E then
                push(NONE)
                log(at, name)
            elseif op == 0x88 then
                push(TRUE)
                log(at, name)
            elseif op == 0x89 then
                push(FALSE)
                log(at, name)
            elseif op == 0x53 then -- STRING: a Python 2 str, repr-quoted
                local text
                text, pos = line(pos, MAX_MESSAGE)
                local q = text:sub(1, 1)
                if #text < 2 or (q ~= "'" and q ~= '"') or text:sub(-1) ~= q then
                    stop("bad", "STRING argument is not quoted", at)
                end
                local raw = unescape_py2(text:sub(2, -2))
                if not raw then
                    stop("bad", "a bad escape in STRING", at)
                end
                local v = { k = "str", v = text_arg(raw) }
                push(v)
                log(at, name .. " " .. repr(v, 40))
            elseif op == 0x54 or op == 0x55 then -- BINSTRING, SHORT_BINSTRING
                local width = op == 0x54 and 4 or 1
                pos = need(width, pos)
                local size = width == 1 and s:byte(at + 1) or le_int32(s, at + 1)
                if size < 0 then
                    stop("bad", "a negative string length", at)
                end
                pos = need(size, pos)
                local v = { k = "str", v = text_arg(s:sub(at + 1 + width, pos - 1)) }
                push(v)
                log(at, name .. " " .. repr(v, 40))
            elseif op == 0x56 then -- UNICODE
                local text
                text, pos = line(pos, MAX_MESSAGE)
                local u = raw_unicode_escape(text)
                if not u then
                    stop("bad", "a bad escape in UNICODE", at)
                end
                local v = { k = "str", v = u }
                push(v)
                log(at, name .. " " .. repr(v, 40))
            elseif op == 0x58 or op == 0x8C or op == 0x8D then -- BINUNICODE(8), SHORT_
                local width = op == 0x8C and 1 or (op == 0x58 and 4 or 8)
                pos = need(width, pos)
                local size = le_uint(s, at + 1, width)
                pos = need(size, pos)
                local raw = s:sub(at + 1 + width, pos - 1)
                if not utf8_valid(raw) then
                    stop("bad", "a string that is not valid UTF-8", at)
                end
                local v = { k = "str", v = raw }
                push(v)
                log(at, name .. " " .. repr(v, 40))
            elseif op == 0x43 or op == 0x42 or op == 0x8E then -- (SHORT_)BINBYTES(8)
                local width = op == 0x43 and 1 or (op == 0x42 and 4 or 8)
                pos = need(width, pos)
                local size = le_uint(s, at + 1, width)
                pos = need(size, pos)
                local v = { k = "bytes", v = s:sub(at + 1 + width, pos - 1) }
                push(v)
                log(at, name .. " " .. repr(v, 40))
            elseif op == 0x29 then -- EMPTY_TUPLE
                push({ k = "tuple", items = {}, depth = 1 })
                log(at, name)
            elseif op == 0x74 then -- TUPLE
                push(container("tuple", pop_mark(at, name), at))
                log(at, name)
            elseif op == 0x85 or op == 0x86 or op == 0x87 then -- TUPLE1..3
                local count = op - 0x84
                if #stack - floor() < count then
                    stop("bad", name .. " with fewer than " .. count .. " items", at)
                end
                local list = {}
                for j = #stack - count + 1, #stack do
                    list[#list + 1] = stack[j]
                end
                for _ = 1, count do
                    stack[#stack] = nil
                end
                push(container("tuple", list, at))
                log(at, name)
            elseif op == 0x5D then -- EMPTY_LIST
                push({ k = "list", items = {}, depth = 1 })
                log(at, name)
            elseif op == 0x6C then -- LIST
                push(container("list", pop_mark(at, name), at))
                log(at, name)
            elseif op == 0x61 then -- APPEND
                local item = pop(at, name)
                extend(top(at, name), { item }, at, name, "list")
                log(at, name)
            elseif op == 0x65 then -- APPENDS
                local list = pop_mark(at, name)
                extend(top(at, name), list, at, name, "list")
                log(at, name)
            elseif op == 0x30 then -- POP
                if #marks > 0 and marks[#marks] == #stack then
                    marks[#marks] = nil
                else
                    pop(at, name)
                end
                log(at, name)
            elseif op == 0x31 then -- POP_MARK
                pop_mark(at, name)
                log(at, name)
            elseif op == 0x32 then -- DUP
                local v = top(at, name)
                if v.items and #v.items > 0 then
                    stop("bad", "DUP of a container (refused: it can build cycles)", at)
                end
                push(v)
                log(at, name)
            elseif op == 0x70 then -- PUT
                local text
                text, pos = line(pos, MAX_DIGITS)
                put(index_of(text, at), at, name)
                log(at, name .. " " .. text)
            elseif op == 0x71 or op == 0x72 then -- BINPUT, LONG_BINPUT
                local width = op == 0x71 and 1 or 4
                pos = need(width, pos)
                local index = le_uint(s, at + 1, width)
                put(index, at, name)
                log(at, name .. " " .. string.format("%d", index))
            elseif op == 0x94 then -- MEMOIZE
                put(memo_len, at, name)
                log(at, name)
            elseif op == 0x67 or op == 0x68 or op == 0x6A then -- GET, BINGET, LONG_BINGET
                if memo_len == 0 then
                    stop("bad", "memo GET before any PUT", at)
                end
                local index
                if op == 0x67 then
                    local text
                    text, pos = line(pos, MAX_DIGITS)
                    index = index_of(text, at)
                else
                    local width = op == 0x68 and 1 or 4
                    pos = need(width, pos)
                    index = le_uint(s, at + 1, width)
                end
                get(index, at)
                log(at, name .. " " .. string.format("%d", index))
            -- outside the subset: dicts, sets, byte arrays, buffers (read, and said)
            elseif op == 0x7D then -- EMPTY_DICT
                outside("a dict")
                push({ k = "dict", items = {}, depth = 1 })
                log(at, name)
            elseif op == 0x64 then -- DICT
                outside("a dict")
                local list = pop_mark(at, name)
                if #list % 2 ~= 0 then
                    stop("bad", "DICT with an odd number of items", at)
                end
                push(container("dict", list, at))
                log(at, name)
            elseif op == 0x73 or op == 0x75 then -- SETITEM, SETITEMS
                local list
                if op == 0x73 then
                    local v = pop(at, name)
                    list = { pop(at, name), v }
                else
                    list = pop_mark(at, name)
                    if #list % 2 ~= 0 then
                        stop("bad", "SETITEMS with an odd number of items", at)
                    end
                end
                extend(top(at, name), list, at, name, "dict")
                log(at, name)
            elseif op == 0x8F then -- EMPTY_SET
                outside("a set")
                push({ k = "set", items = {}, depth = 1 })
                log(at, name)
            elseif op == 0x90 then -- ADDITEMS
                extend(top(at, name), pop_mark(at, name), at, name, "set")
                log(at, name)
            elseif op == 0x91 then -- FROZENSET
                outside("a frozenset")
                push(container("frozenset", pop_mark(at, name), at))
                log(at, name)
            elseif op == 0x96 then -- BYTEARRAY8
                outside("a bytearray")
                pos = need(8, pos)
                local size = le_uint(s, at + 1, 8)
                pos = need(size, pos)
                push({ k = "bytearray", v = s:sub(at + 9, pos - 1) })
                log(at, name)
            elseif op == 0x97 then -- NEXT_BUFFER
                outside("an out-of-band buffer")
                push({ k = "buffer" })
                log(at, name)
            elseif op == 0x98 then -- READONLY_BUFFER
                outside("an out-of-band buffer")
                top(at, name)
                log(at, name)
            -- code: what the unpickler would import or call (shown, never run)
            elseif op == 0x63 or op == 0x69 then -- GLOBAL, INST
                -- (the unpickler imports whatever the lines say, even cut short)
                danger(at, name, op == 0x63 and "imports" or "imports and calls")
                local module, what
                module, pos = line(pos, 1024)
                what, pos = line(pos, 1024)
                local g = { k = "global", v = py2_text(module) .. "." .. py2_text(what) }
                if r.dangerous.at == at then
                    r.dangerous.text = r.dangerous.text .. " " .. g.v
                end
                if op == 0x63 then
                    push(g)
                else
                    local args = pop_mark(at, name)
                    push({ k = "call", f = g, args = container("tuple", args, at) })
                end
                log(at, name .. " " .. g.v)
            elseif op == 0x93 then -- STACK_GLOBAL
                -- (flagged when reached, as the project's decoder refuses it, even if
                -- what is on the stack would make the unpickler fail first)
                danger(at, name, "imports")
                local what = pop(at, name)
                local module = pop(at, name)
                if what.k ~= "str" or module.k ~= "str" then
                    stop("bad", "STACK_GLOBAL of something that is not text", at)
                end
                local g = { k = "global", v = module.v .. "." .. what.v }
                if r.dangerous.at == at then
                    r.dangerous.text = "imports " .. g.v
                end
                push(g)
                log(at, name .. " " .. g.v)
            elseif op == 0x52 then -- REDUCE
                local args = pop(at, name)
                local f = pop(at, name)
                call(at, name)
                push({ k = "call", f = f, args = args })
                log(at, name)
            elseif op == 0x62 then -- BUILD
                local state = pop(at, name)
                local obj = pop(at, name)
                call(at, name)
                push({ k = "build", obj = obj, state = state })
                log(at, name)
            elseif op == 0x6F then -- OBJ
                local list = pop_mark(at, name)
                if #list == 0 then
                    stop("bad", "OBJ without a class", at)
                end
                local cls = table.remove(list, 1)
                call(at, name)
                push({ k = "call", f = cls, args = container("tuple", list, at) })
                log(at, name)
            elseif op == 0x81 or op == 0x92 then -- NEWOBJ, NEWOBJ_EX
                if op == 0x92 then
                    pop(at, name) -- kwargs
                end
                local args = pop(at, name)
                local cls = pop(at, name)
                call(at, name)
                push({ k = "call", f = cls, args = args })
                log(at, name)
            elseif op == 0x50 then -- PERSID
                local text
                text, pos = line(pos, 1024)
                outside("a persistent id")
                push({ k = "persid", v = py2_text(text) })
                log(at, name)
            elseif op == 0x51 then -- BINPERSID
                local pid = pop(at, name)
                outside("a persistent id")
                push({ k = "persid", v = repr(pid, 40) })
                log(at, name)
            elseif op == 0x82 or op == 0x83 or op == 0x84 then -- EXT1, EXT2, EXT4
                local width = op == 0x82 and 1 or (op == 0x83 and 2 or 4)
                danger(at, name, "imports a registered extension")
                pos = need(width, pos)
                local code = le_uint(s, at + 1, width)
                push({ k = "ext", v = string.format("%d", code) })
                log(at, name)
            else
                stop("bad", string.format("unknown opcode 0x%02x", op), at)
            end
        end
    end

    local ok, err = pcall(run)
    if not ok then
        if type(err) ~= "table" or not err.cs457 then
            error(err, 0) -- a bug here, not in the bytes: let Wireshark say so
        end
        r.status, r.reason, r.at, r.need = err.status, err.reason, err.at, err.need
    end
    return r
end

------------------------------------------------------------------- messages

-- Is s[i..j] text a person typed (printable ASCII, tabs and newlines)?
local function is_text(s, i, j)
    for k = i, j do
        local c = s:byte(k)
        if not (c == 9 or c == 10 or c == 13 or (c >= 0x20 and c < 0x7F)) then
            return false
        end
    end
    return true
end

-- The message of a stream starting at s[i] (separators before it and after it are
-- part of it). Returns m = {status, start, stop (the index of its last byte), ...}:
--   "ok"         form ("raw", "digits", "pickle"), value, body_start, r (the pickle)
--   "incomplete" it runs past the end of s (need: at least this many bytes from start)
--   "bad"        not a message: it and everything after it (reason, text, r)
--   "space"      only separators are left
local function next_message(s, i)
    local n = #s
    local start = i
    while i <= n and SEP[s:byte(i)] do
        i = i + 1
    end
    if i > n then
        return { status = "space", start = start, stop = n }
    end
    local m = { start = start, body_start = i }
    local b = s:byte(i)
    if b == 0x52 then -- 'R': REGISTER (R is also REDUCE, which no message starts with)
        local have = s:sub(i, i + 7)
        if have == "REGISTER" then
            m.status, m.form, m.value, m.stop = "ok", "raw", { k = "str", v = "REGISTER" }, i + 7
        elseif ("REGISTER"):sub(1, #have) == have then
            return { status = "incomplete", start = start, need = i - start + 8 }
        end
    end
    if not m.status and DIGIT[b] then
        local j = i
        while j <= n and DIGIT[s:byte(j)] do
            j = j + 1
        end
        if j - i > MAX_ASCII_DIGITS then
            m.status, m.reason = "bad", "an ASCII position of more than 20 digits"
        else
            m.status, m.form, m.stop = "ok", "digits", j - 1
            m.value = int_from_text(s:sub(i, j - 1))
        end
    end
    if not m.status then
        local r = parse_pickle(s, i)
        m.r = r
        if r.status == "incomplete" then
            local need = r.need and (i - start + r.need) or nil
            return { status = "incomplete", start = start, need = need, r = r }
        end
        m.status = r.status
        if r.status == "ok" then
            m.form, m.value, m.stop = "pickle", r.value, r.stop
        else
            m.reason = r.reason
        end
    end
    if m.status == "bad" then
        m.stop = n
        if is_text(s, i, n) then
            m.text = s:sub(i, n)
        end
        return m
    end
    while m.stop < n and SEP[s:byte(m.stop + 1)] do
        m.stop = m.stop + 1
    end
    return m
end

local PART2 = {
    ECHO = true, REGISTER = true, REG_INIT = true, UPDATE_NBR = true, PING = true,
    ACK = true, QUERY = true, QUERY_RESULT = true, HELD = true,
}

-- Text for a field: surrogates (valid in a pickle, not in UTF-8) shown as U+FFFD.
local function field_text(s)
    return (s:gsub("\237[\160-\191][\128-\191]", "\239\191\189"))
end

local function text_of(v)
    if v and v.k == "str" then
        return field_text(v.v)
    end
    if v and v.k == "bytes" and utf8_valid(v.v) then
        return field_text(v.v)
    end
    return nil
end

local function int_of(v)
    if v and v.k == "int" and v.v and v.v >= -2147483648 and v.v <= 2147483647 then
        return v.v
    end
    return nil
end

-- What a message means: m.kind, m.part, m.summary and m.fields ({field, value} pairs),
-- given its role ("request": from the side that spoke first; "answer": the other).
local function interpret(m, role)
    local fields = {}
    m.fields = fields
    local function add(field, v)
        if v ~= nil then
            fields[#fields + 1] = { field, v }
        end
    end
    local v = m.value
    if m.r and m.r.dangerous then
        m.kind, m.summary = "dangerous", "DANGEROUS pickle: " .. repr(v, SHOWN)
        return
    end
    if m.r and m.r.outside then
        m.kind, m.summary = "other", "pickle of " .. m.r.outside .. ": " .. repr(v, SHOWN)
        return
    end
    if v.k == "tuple" or v.k == "list" then
        local tag = text_of(v.items[1])
        if tag then
            local a = v.items
            m.part, m.kind = 2, "part2"
            add(F.command, tag)
            if tag == "ECHO" or tag == "ACK" then
                add(F.handle, text_of(a[2]))
            elseif tag == "REGISTER" then
                add(F.handle, text_of(a[2]))
                add(F.port, int_of(a[3]))
            elseif tag == "HELD" then
                add(F.handle, text_of(a[2]))
                add(F.count, int_of(a[3]))
            elseif tag == "REG_INIT" or tag == "UPDATE_NBR" then
                add(F.handle, text_of(a[2]))
                add(F.ip, text_of(a[3]))
                add(F.port, int_of(a[4]))
                if tag == "REG_INIT" then
                    add(F.n, int_of(a[5]))
                    local item = a[6]
                    if item and item.items then
                        add(F.seqnum, int_of(item.items[1]))
                        add(F.value, text_of(item.items[2]))
                    end
                end
            elseif tag == "PING" then
                if role == "request" then
                    add(F.stamp, text_of(a[2]))
                else
                    add(F.handle, text_of(a[2]))
                end
            elseif tag == "QUERY" then
                add(F.seqnum, int_of(a[2]))
            elseif tag == "QUERY_RESULT" then
                local pair = a[2]
                if pair and pair.items then
                    add(F.seqnum, int_of(pair.items[1]))
                    add(F.value, text_of(pair.items[2]))
                end
            elseif #a == 2 and text_of(a[2]) then
                add(F.sender, tag)
                add(F.text, text_of(a[2]))
            end
            if not PART2[tag] and not (#a == 2 and text_of(a[2])) then
                m.kind = "other"
            end
            m.summary = repr(v, SHOWN)
            return
        end
        if role == "answer" and #v.items == 2 and int_of(v.items[1]) and text_of(v.items[2]) then
            m.part, m.kind = 1, "item"
            add(F.seqnum, int_of(v.items[1]))
            add(F.value, text_of(v.items[2]))
            m.summary = "item " .. repr(v, SHOWN)
            return
        end
    end
    if v.k == "int" then
        m.part = 1
        if role == "request" then
            m.kind, m.summary = "position", "position " .. v.text
            add(F.position, int_of(v))
        else
            m.kind, m.summary = "count", "N = " .. v.text
            add(F.n, int_of(v))
        end
        return
    end
    local text = text_of(v)
    if role == "request" and text == "REGISTER" then
        m.part, m.kind, m.summary = 1, "register", "REGISTER"
        add(F.command, "REGISTER")
        return
    end
    if role == "answer" and text == "Bad request" then
        m.part, m.kind, m.summary = 1, "bad_request", "'Bad request'"
        add(F.text, text)
        return
    end
    m.kind, m.summary = "other", repr(v, SHOWN)
end

local ENCODING = {
    raw = "raw bytes",
    digits = "ASCII digits",
}

-- A dangerous pickle: the flag, each opcode that imports or calls, an expert error.
local function add_danger(tvb, item, m)
    local d = m.r.dangerous
    item:add(F.dangerous, tvb(d.at - 1, 1), true)
    for _, op in ipairs(m.r.code_ops) do
        item:add(F.dangerous_opcode, tvb(op.at - 1, 1), op.op)
    end
    item:add_proto_expert_info(E.dangerous, string.format(
        "Pickle would run code when unpickled: %s at byte %d %s",
        d.op, d.at - m.body_start, d.text))
end

-- Add message m of s (which is tvb's bytes) to the tree.
local function add_message(tvb, tree, m, role)
    local range = tvb(m.start - 1, m.stop - m.start + 1)
    local item = tree:add(cs457, range)
    item:add(F.role, range, role)
    item:add(F.length, range, m.stop - m.start + 1)
    if m.status == "space" then
        item:append_text(": separators only")
        item:add(F.kind, range, "space")
        m.summary = "separators"
        return item
    end
    if m.status == "bad" then
        local why = m.reason or "not a message"
        local what
        if m.text then
            what = "text " .. quote(cut(m.text, 60), false) .. ", not a pickle (" .. why .. ")"
        else
            what = why
        end
        local kind = m.text and "text" or "malformed"
        if m.r and m.r.dangerous then
            kind = "dangerous" -- (the unpickler would import before it fails)
            what = "DANGEROUS: " .. what
        end
        m.summary = "not a message: " .. what
        item:append_text(": " .. m.summary)
        item:add(F.kind, range, kind)
        item:add(F.error, range, what)
        item:add_proto_expert_info(E.malformed, "Not a cs457 message: " .. what)
        if m.r and m.r.outside then
            item:add(F.outside, range, m.r.outside)
        end
        if m.r and m.r.dangerous then
            add_danger(tvb, item, m)
        end
        return item
    end
    interpret(m, role)
    item:append_text(": " .. m.summary)
    item:add(F.kind, range, m.kind)
    if m.part then
        item:add(F.part, range, m.part)
    end
    if m.form == "pickle" then
        local proto = m.r.protocol
        item:add(F.encoding, range, "pickle, protocol " .. proto)
        item:add(F.protocol, range, proto)
    else
        item:add(F.encoding, range, ENCODING[m.form])
    end
    item:add(F.decoded, range, repr(m.value, 4 * SHOWN))
    for _, pair in ipairs(m.fields) do
        item:add(pair[1], range, pair[2])
    end
    local r = m.r
    if r and r.outside then
        item:add(F.outside, range, r.outside)
        item:add_proto_expert_info(E.outside, "Pickle of " .. r.outside
            .. ", outside the protocol's subset (the project's decoder refuses it)")
    end
    if r and r.dangerous then
        add_danger(tvb, item, m)
    elseif m.kind == "other" and not (r and r.outside) then
        item:add_proto_expert_info(E.other, "A pickle, but no message of the protocol: "
            .. repr(m.value, SHOWN))
    end
    if r and cs457.prefs.opcodes then
        local sub = item:add(tvb(m.body_start - 1, r.stop - m.body_start + 1),
            string.format("Pickle opcodes (%d)", r.nops))
        for _, op in ipairs(r.ops) do
            sub:add(F.opcode, tvb(op.at - 1, op.len), op.text)
        end
        if r.nops > #r.ops then
            sub:add(tvb(m.body_start - 1, 0), string.format("... %d more", r.nops - #r.ops))
        end
    end
    return item
end

---------------------------------------------------------------- conversations

local first_sender = {} -- "tcp:<stream>" -> the endpoint that spoke first
local servers = {} -- "tcp|<address>|<port>" -> true: received a message the heuristic took

function cs457.init()
    first_sender = {}
    servers = {}
end

local function endpoint(address, port)
    return tostring(address) .. "|" .. tostring(port)
end

-- "request" for bytes from the side that spoke first in this TCP connection or UDP
-- flow (a client to a tracker, a tracker to a peer it PINGs, a peer to its neighbour),
-- "answer" for the other side's.
local function role_of(pinfo, transport)
    local fi = (transport == "tcp" and f_tcp_stream or f_udp_stream)()
    local me = endpoint(pinfo.src, pinfo.src_port)
    local port = cs457.prefs.server_port
    if not fi then
        return pinfo.src_port == port and "answer" or "request"
    end
    local key = transport .. ":" .. tostring(fi.value)
    local first = first_sender[key]
    if first == nil then
        -- The first bytes of this flow seen: they speak first, unless they come from
        -- the tracker's port (a capture begun in the middle of a connection).
        if pinfo.src_port == port and pinfo.dst_port ~= port then
            first = endpoint(pinfo.dst, pinfo.dst_port)
        else
            first = me
        end
        first_sender[key] = first
    end
    return first == me and "request" or "answer"
end

local function transport_of()
    if f_tcp_stream() then
        return "tcp"
    end
    return "udp"
end

local function dissect(tvb, pinfo, tree, transport)
    local len = tvb:len()
    if len == 0 then
        return 0
    end
    local s = tvb:raw(0, len)
    local role = role_of(pinfo, transport)
    local i = 1
    local shown = {}
    local count = 0
    while i <= len do
        local m = next_message(s, i)
        if m.status == "incomplete" then
            if transport == "tcp" then
                pinfo.desegment_offset = m.start - 1
                if m.need and m.need > len - m.start + 1 then
                    pinfo.desegment_len = m.need - (len - m.start + 1)
                else
                    pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
                end
                break
            end
            m.status, m.stop, m.reason = "bad", len, "cut short: the datagram ends inside it"
            local p = m.start
            while p <= len and SEP[s:byte(p)] do
                p = p + 1
            end
            m.body_start = p
            if is_text(s, p, len) then
                m.text = s:sub(p, len)
            end
        end
        add_message(tvb, tree, m, role)
        count = count + 1
        if count <= 8 then
            shown[#shown + 1] = m.summary
        end
        i = m.stop + 1
    end
    if count > 0 then
        pinfo.cols.protocol = "CS457"
        local text = table.concat(shown, ", ")
        if count > #shown then
            text = text .. string.format(", ... (%d messages)", count)
        end
        pinfo.cols.info = (role == "request" and "Request: " or "Answer: ") .. text
    end
    return len
end

function cs457.dissector(tvb, pinfo, tree)
    return dissect(tvb, pinfo, tree, transport_of())
end

---------------------------------------------------------------------- heuristic

-- Conservative: the bytes are REGISTER, or whole pickles of protocol messages (the
-- last one may run on into the next segment if it starts with PROTO), and nothing else.
local function looks_like_cs457(s)
    local i, n, found = 1, #s, 0
    while i <= n do
        local m = next_message(s, i)
        if m.status == "incomplete" then
            -- It runs on into the next segment: after whole messages, or a pickle
            -- that starts with PROTO 0..5 (two telling bytes) and at least two more.
            if found > 0 then
                return true
            end
            local p = m.start
            while SEP[s:byte(p)] do
                p = p + 1
            end
            local proto = s:byte(p + 1)
            return s:byte(p) == 0x80 and proto ~= nil and proto <= 5 and n - p + 1 >= 4
        end
        if m.status ~= "ok" or m.form == "digits" then
            return false
        end
        if m.form == "pickle" then
            if m.r.dangerous or m.r.outside then
                return false
            end
            interpret(m, "request")
            local answer = { value = m.value, r = m.r }
            interpret(answer, "answer")
            if m.kind == "other" and answer.kind == "other" then
                return false
            end
        end
        found = found + 1
        i = m.stop + 1
    end
    return found > 0
end

local function heuristic(tvb, pinfo, tree, transport)
    local len = tvb:len()
    if len == 0 then
        return false
    end
    local known = servers[transport .. "|" .. endpoint(pinfo.dst, pinfo.dst_port)]
        or servers[transport .. "|" .. endpoint(pinfo.src, pinfo.src_port)]
    if not known then
        if not looks_like_cs457(tvb:raw(0, math.min(len, MAX_MESSAGE))) then
            return false
        end
        if role_of(pinfo, transport) == "request" then
            servers[transport .. "|" .. endpoint(pinfo.dst, pinfo.dst_port)] = true
        end
    end
    pinfo.conversation = cs457
    dissect(tvb, pinfo, tree, transport)
    return true
end

cs457:register_heuristic("tcp", function(tvb, pinfo, tree)
    return heuristic(tvb, pinfo, tree, "tcp")
end)
cs457:register_heuristic("udp", function(tvb, pinfo, tree)
    return heuristic(tvb, pinfo, tree, "udp")
end)

------------------------------------------------------------------------- ports

local registered_port = 0

local function register_port(port)
    if port == registered_port then
        return
    end
    local tcp, udp = DissectorTable.get("tcp.port"), DissectorTable.get("udp.port")
    if registered_port ~= 0 then
        tcp:remove(registered_port, cs457)
        udp:remove(registered_port, cs457)
    end
    if port ~= 0 then
        tcp:add(port, cs457)
        udp:add(port, cs457)
    end
    registered_port = port
end

function cs457.prefs_changed()
    register_port(cs457.prefs.server_port)
end

register_port(DEFAULT_PORT)
