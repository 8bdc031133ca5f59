/// Splits a SQL file into its statements, so that a migration can be run one statement at a time over the
/// extended query protocol (which, unlike psql, accepts one statement per query).
///
/// It understands what can hide a semicolon in PostgreSQL: string literals (`'...'`, with `''` as an escaped quote,
/// and `E'...'` with backslash escapes), quoted identifiers (`"..."`), dollar-quoted bodies (`$$...$$`,
/// `$tag$...$tag$`), line comments (`--`) and nested block comments (`/* ... */`). Comments are kept inside the
/// statement they belong to; statements with nothing but comments and white space are dropped.
public enum SQLScript {
    /// The statements of `script`, without their terminating semicolons.
    public static func statements(in script: String) -> [String] {
        let chars = Array(script.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var hasCode = false
        var index = 0

        func append(_ range: Range<Int>) { current.append(contentsOf: chars[range]) }

        while index < chars.count {
            let char = chars[index]
            let next: Unicode.Scalar? = index + 1 < chars.count ? chars[index + 1] : nil
            switch char {
            case "-" where next == "-":
                let end = chars[index...].firstIndex(of: "\n") ?? chars.count
                append(index..<end)
                index = end
            case "/" where next == "*":
                var depth = 0
                var end = index
                while end < chars.count {
                    if chars[end] == "/", end + 1 < chars.count, chars[end + 1] == "*" {
                        depth += 1
                        end += 2
                    } else if chars[end] == "*", end + 1 < chars.count, chars[end + 1] == "/" {
                        depth -= 1
                        end += 2
                        if depth == 0 { break }
                    } else {
                        end += 1
                    }
                }
                append(index..<min(end, chars.count))
                index = min(end, chars.count)
            case "'", "\"":
                let backslashEscapes =
                    char == "'" && index > 0 && (chars[index - 1] == "E" || chars[index - 1] == "e")
                    && (index < 2 || !isIdentifierCharacter(chars[index - 2]))
                var end = index + 1
                while end < chars.count {
                    if backslashEscapes && chars[end] == "\\" {
                        end += 2
                        continue
                    }
                    if chars[end] == char {
                        if end + 1 < chars.count && chars[end + 1] == char {
                            end += 2
                            continue
                        }
                        end += 1
                        break
                    }
                    end += 1
                }
                append(index..<min(end, chars.count))
                index = min(end, chars.count)
                hasCode = true
            case "$":
                if let tagEnd = dollarTagEnd(chars, from: index), index == 0 || !isIdentifierCharacter(chars[index - 1]) {
                    let tag = Array(chars[index...tagEnd])
                    var end = tagEnd + 1
                    while end < chars.count {
                        if chars[end] == "$", end + tag.count <= chars.count, Array(chars[end..<end + tag.count]) == tag {
                            end += tag.count
                            break
                        }
                        end += 1
                    }
                    append(index..<min(end, chars.count))
                    index = min(end, chars.count)
                } else {
                    current.append(char)
                    index += 1
                }
                hasCode = true
            case ";":
                if hasCode { statements.append(String(current).trimmingWhitespace()) }
                current = String.UnicodeScalarView()
                hasCode = false
                index += 1
            default:
                if !char.properties.isWhitespace { hasCode = true }
                current.append(char)
                index += 1
            }
        }
        if hasCode { statements.append(String(current).trimmingWhitespace()) }
        return statements
    }

    /// The index of the closing `$` of a dollar-quote tag opening at `start` (`$$` or `$name$`), if it is one.
    private static func dollarTagEnd(_ chars: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start + 1
        while index < chars.count {
            let char = chars[index]
            if char == "$" { return index }
            let allowed = isIdentifierCharacter(char) && !(index == start + 1 && char.properties.numericType != nil)
            guard allowed else { return nil }
            index += 1
        }
        return nil
    }

    private static func isIdentifierCharacter(_ char: Unicode.Scalar) -> Bool {
        char == "_" || char.properties.isAlphabetic || char.properties.numericType != nil
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let scalars = self.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
