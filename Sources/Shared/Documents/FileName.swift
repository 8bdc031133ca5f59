import Foundation

/// A file name as given by a browser or a department, made safe to keep as metadata and to offer again in a
/// download. The content is never stored under it; this is only what the resident sees.
public enum FileName {
    /// At most this many characters are kept (the extension stays).
    public static let maxLength = 120

    /// The last path component (a browser on Windows may send `C:\Users\...\brief.pdf`), in Unicode NFC, without
    /// control or formatting characters (which include the right-to-left override that makes `exe.pdf` look like
    /// `fdp.exe`), without characters that some file systems refuse, without leading dots, shortened to
    /// ``maxLength`` with its extension kept; `document` when nothing is left.
    public static func sanitise(_ given: String) -> String {
        let lastComponent =
            given.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var scalars = String.UnicodeScalarView()
        var lastWasSpace = false
        for scalar in lastComponent.precomposedStringWithCanonicalMapping.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                continue
            default: break
            }
            if scalar.properties.isWhitespace {
                if !lastWasSpace { scalars.append(" ") }
                lastWasSpace = true
                continue
            }
            lastWasSpace = false
            scalars.append("<>:\"|?*".unicodeScalars.contains(scalar) ? "_" : scalar)
        }
        var name = String(scalars).trimmingCharacters(in: .whitespaces)
        while name.hasPrefix(".") { name.removeFirst() }
        while name.hasSuffix(".") || name.hasSuffix(" ") { name.removeLast() }
        // Counted in code points, as PostgreSQL counts (a name of combining marks is short in characters only).
        if name.unicodeScalars.count > self.maxLength {
            let fileExtension = FileType.fileExtension(of: name)
            let keep = fileExtension.isEmpty || fileExtension.unicodeScalars.count > 10 ? "" : "." + fileExtension
            let stem = String(String.UnicodeScalarView(name.unicodeScalars.prefix(self.maxLength - keep.unicodeScalars.count)))
            name = stem.trimmingCharacters(in: .whitespaces) + keep
        }
        return name.isEmpty ? "document" : name
    }

    /// A `Content-Disposition: attachment` value for a sanitised name (RFC 6266): an ASCII `filename` for old
    /// clients and the exact name as `filename*` (RFC 8187).
    public static func contentDisposition(_ name: String) -> String {
        let ascii = String(
            String.UnicodeScalarView(
                name.unicodeScalars.map { scalar in
                    scalar.isASCII && scalar.value >= 0x20 && scalar != "\"" && scalar != "\\" && scalar != "%" ? scalar : "_"
                }))
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        allowed.insert(charactersIn: "!#$&+-.^_`|~")
        let encoded = name.addingPercentEncoding(withAllowedCharacters: allowed) ?? ascii
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }

    /// The file name in a request's `Content-Disposition` header (`filename*` preferred over `filename`), for uploads
    /// with a raw body. Nil when the header names none.
    public static func fromContentDisposition(_ header: String) -> String? {
        var plain: String?
        var extended: String?
        for parameter in Self.parameters(header) {
            switch parameter.name {
            case "filename*":
                // RFC 8187: charset'language'percent-encoded; only UTF-8 (and its ASCII subset) is accepted.
                let parts = parameter.value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                if parts.count == 3, ["utf-8", "us-ascii"].contains(parts[0].lowercased()) {
                    extended = String(parts[2]).removingPercentEncoding
                }
            case "filename": plain = parameter.value
            default: continue
            }
        }
        return extended ?? plain
    }

    /// The `name=value` parameters of a header like `Content-Disposition`, with quoted values unquoted.
    public static func parameters(_ header: String) -> [(name: String, value: String)] {
        var result: [(String, String)] = []
        var rest = Substring(header)
        // Skip the disposition type.
        guard let semicolon = rest.firstIndex(of: ";") else { return [] }
        rest = rest[rest.index(after: semicolon)...]
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "\t" || $0 == ";" }
            guard let equals = rest.firstIndex(of: "=") else { break }
            let name = rest[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: equals)...].drop { $0 == " " }
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(character)
                        escaped = false
                    } else if character == "\\" {
                        escaped = true
                    } else if character == "\"" {
                        break
                    } else {
                        value.append(character)
                    }
                }
                rest = rest.drop { $0 != ";" }
            } else {
                let end = rest.firstIndex(of: ";") ?? rest.endIndex
                value = rest[..<end].trimmingCharacters(in: .whitespaces)
                rest = rest[end...]
            }
            result.append((name, value))
        }
        return result
    }
}
