-- A stand-in for KOReader's OPDS browser, written for jmbooru's tests (no KOReader code is copied:
-- the tests may fetch nothing, so this mirrors the behaviour of KOReader's plugins/opds.koplugin,
-- read from its public sources: opdsparser.lua with frontend/luxl.lua, opdsbrowser.lua, opdspse.lua).
--
--   luajit koreader_like.lua feed <file> <page width>   -> the item table KOReader would build
--   luajit koreader_like.lua osd <file>                 -> the search URL KOReader would use
--
-- Output is JSON on stdout for tests/test_opds_clients.py.

-- opdsparser.lua: before lexing, KOReader drops stylesheets and comments and rewrites bare
-- self-closing tags; it unescapes the five XML entities and numeric references.
local function prepare(text)
    text = text:gsub("<%?xml%-stylesheet.-%?>", "")
    text = text:gsub("<!%-%-.-%-%->", "")
    text = text:gsub("<([%l:]+)/>", "<%1 />")
    return text
end

local entities = { lt = "<", gt = ">", amp = "&", quot = '"', apos = "'" }
local function unescape(s)
    return (s:gsub("(&(#?)([%d%a]+);)", function(orig, n, name)
        if entities[name] then return entities[name] end
        if n == "#" then
            local code = tonumber(name)
            if code and code < 128 then return string.char(code) end
        end
        return orig
    end))
end

-- luxl: a pull lexer emitting start / attribute name / attribute value / text / end events, with
-- the quirks of its state machine that a feed must survive:
--  * element and attribute names are reported literally, prefix and all ("atom:entry" is not "entry");
--  * attribute values must be double-quoted (a single quote is not a quote to it);
--  * a value is reported from its first ASCII letter, digit, "." or "/" on: what comes before is
--    skipped, and a value with none of them (e.g. all CJK) is not reported at all;
--  * text is reported from its first non-space character; whitespace-only text not at all;
--  * "<?...?>" reaches the parser as a start element named after its target ("xml"), never ended.
local function value_as_luxl_reports(value)
    local from = value:find("[%w%./]")
    return from and value:sub(from) or nil
end

local function lexemes(text)
    local events = {}
    local pos = 1
    local len = #text
    while pos <= len do
        local lt = text:find("<", pos, true)
        local chunk = text:sub(pos, (lt or len + 1) - 1)
        local from = chunk:find("%S")
        if from and lt then table.insert(events, { "text", chunk:sub(from) }) end
        if not lt then break end
        if text:sub(lt, lt + 1) == "<?" then
            local close = assert(text:find("?>", lt, true), "unterminated processing instruction")
            table.insert(events, { "start", text:match("^<%?([%w%.]+)", lt) })
            pos = close + 2
        elseif text:sub(lt, lt + 1) == "</" then
            local close = assert(text:find(">", lt, true), "unterminated end tag")
            table.insert(events, { "end", text:sub(lt + 2, close - 1):match("^%s*(.-)%s*$") })
            pos = close + 1
        else
            local name, rest = text:match("^<([^%s/>]+)()", lt)
            assert(name, "bad start tag at " .. lt)
            table.insert(events, { "start", name })
            local p = rest
            while true do
                p = text:match("^%s*()", p)
                if text:sub(p, p + 1) == "/>" then
                    table.insert(events, { "end", name })
                    p = p + 2
                    break
                elseif text:sub(p, p) == ">" then
                    p = p + 1
                    break
                end
                local attr, value, after = text:match('^([^%s=/>]+)%s*=%s*"([^"]*)"()', p)
                assert(attr, "<" .. name .. ">: an attribute KOReader cannot read (not double-quoted?) at " .. p)
                local reported = value_as_luxl_reports(value)
                table.insert(events, { "attr_name", attr })
                if reported then table.insert(events, { "attr_val", reported }) end
                p = after
            end
            pos = p
        end
    end
    return events
end

-- opdsparser.lua createFlatXTable: "entry", "link" and "Url" collect into lists; any other
-- child element is kept only the first time it appears; attributes become keys of the
-- element's table; an element's text replaces its table (attributes and all).
local function flat_table(events, i, current)
    current = current or {}
    local attr_name
    while i <= #events do
        local kind, txt = events[i][1], events[i][2]
        i = i + 1
        if kind == "start" and txt == "xml" then
            -- the XML declaration: its attributes land on the current table; it is never ended
        elseif kind == "start" then
            local child
            child, i = flat_table(events, i)
            if txt == "entry" or txt == "link" or txt == "Url" then
                if current[txt] == nil then current[txt] = {} end
                table.insert(current[txt], child)
            elseif type(current) == "table" and current[txt] == nil then
                current[txt] = child
            end
        elseif kind == "attr_name" then
            attr_name = unescape(txt)
        elseif kind == "attr_val" then
            current[attr_name] = unescape(txt)
        elseif kind == "text" then
            current = unescape(txt)
        elseif kind == "end" then
            return current, i
        end
    end
    return current, i
end

local function parse(text)
    local events = lexemes(prepare(text))
    return (flat_table(events, 1))
end

-- opdsbrowser.lua's patterns and rel sets.
local catalog_type = "application/atom%+xml"
local search_type = "application/opensearchdescription%+xml"
local acquisition_rel = "^http://opds%-spec%.org/acquisition"
local stream_rel = "http://vaemendis.net/opds-pse/stream"
local catalog_rel = { ["subsection"] = true, ["http://opds-spec.org/subsection"] = true }
local image_rel = { ["http://opds-spec.org/image"] = true }
local thumbnail_rel = { ["http://opds-spec.org/image/thumbnail"] = true }

-- genItemTableFromCatalog: feed links of an Atom type by rel (next, start ...), the OpenSearch
-- link, then one item per entry: its catalog link (url), acquisitions, stream links (only with a
-- "*:count" attribute), cover and thumbnail, title, author (a string, or the first author only),
-- and content or summary.
local function items(catalog)
    local feed = catalog.feed or catalog
    local result = { hrefs = {}, items = {}, title = type(feed.title) == "string" and feed.title or nil }
    for _, link in ipairs(feed.link or {}) do
        if link.type and link.type:find(catalog_type) and link.rel and link.href then
            result.hrefs[link.rel] = link.href
        end
        if link.type and link.type:find(search_type) and link.href then
            result.search_description = link.href
        end
    end
    for _, entry in ipairs(feed.entry or {}) do
        local item = { acquisitions = {} }
        for _, link in ipairs(entry.link or {}) do
            if link.type and link.type:find(catalog_type) and (not link.rel or catalog_rel[link.rel]) then
                item.url = link.href
            end
            if link.rel and link.rel:match(acquisition_rel) then
                table.insert(item.acquisitions, { type = link.type, href = link.href, title = link.title })
            elseif link.rel == stream_rel then
                local count
                for k, v in pairs(link) do
                    if k:sub(-6) == ":count" then count = tonumber(v) end
                end
                if count then
                    table.insert(item.acquisitions, { type = link.type, href = link.href, count = count })
                end
            elseif link.rel and thumbnail_rel[link.rel] then
                item.thumbnail = link.href
            elseif link.rel and image_rel[link.rel] then
                item.image = link.href
            end
        end
        item.title = type(entry.title) == "string" and entry.title or "Unknown"
        if type(entry.author) == "table" and entry.author.name then
            item.author = entry.author.name
        end
        item.id = entry.id
        local content = entry.content or entry.summary
        item.content = type(content) == "string" and content or nil
        -- onMenuSelect: an entry with any acquisition opens as a book; only others are followed.
        item.opens_as_book = #item.acquisitions > 0
        table.insert(result.items, item)
    end
    return result
end

-- opdspse.lua streamPages: the viewer's image n (1-based) is fetched from the stream href with
-- {pageNumber} = n - 1 and {maxWidth} = the screen width.
local function page_urls(href, count, width)
    local urls = {}
    for key = 1, count do
        local page_url = href:gsub("{pageNumber}", tostring(key - 1))
        page_url = page_url:gsub("{maxWidth}", tostring(width))
        table.insert(urls, page_url)
    end
    return urls
end

-- getSearchTemplate: the first Url whose type is an Atom type; {searchTerms} becomes %s, which
-- searchCatalog later replaces with the URL-encoded words. Nothing else is substituted.
local function search_template(osd)
    local description = osd.OpenSearchDescription
    if type(description) ~= "table" or not description.Url then return nil end
    for _, candidate in ipairs(description.Url) do
        if candidate.type and candidate.template and candidate.type:find("application/atom%+xml") then
            return (candidate.template:gsub("{searchTerms}", "%%s"))
        end
    end
end

-- A minimal JSON writer (strings, numbers, booleans, arrays, objects).
local function json(value)
    local t = type(value)
    if t == "string" then
        return '"' .. value:gsub('[%c"\\]', function(c)
            return string.format("\\u%04x", c:byte())
        end) .. '"'
    elseif t == "number" or t == "boolean" then
        return tostring(value)
    elseif t == "nil" then
        return "null"
    end
    local is_array = #value > 0 or next(value) == nil
    local parts = {}
    if is_array then
        for _, v in ipairs(value) do table.insert(parts, json(v)) end
        return "[" .. table.concat(parts, ",") .. "]"
    end
    for k, v in pairs(value) do table.insert(parts, json(tostring(k)) .. ":" .. json(v)) end
    return "{" .. table.concat(parts, ",") .. "}"
end

local mode, path, width = arg[1], arg[2], tonumber(arg[3] or "600")
local file = assert(io.open(path, "rb"))
local text = file:read("*a")
file:close()
local parsed = parse(text)
if mode == "osd" then
    io.write(json({ template = search_template(parsed) }))
else
    local result = items(parsed)
    for _, item in ipairs(result.items) do
        for _, acquisition in ipairs(item.acquisitions) do
            if acquisition.count then
                acquisition.page_urls = page_urls(acquisition.href, acquisition.count, width)
            end
        end
    end
    io.write(json(result))
end
