/// The kinds of file the portal accepts, recognised by their first bytes and their extension together: a file is
/// accepted only when both say the same allowed type. Legacy Office files (`.doc`, `.xls`, `.ppt`) and the
/// macro-enabled Office formats are not on the list: they are the classic carriers of macro malware, and every
/// office suite saves the modern formats.
public enum FileType: String, Sendable, CaseIterable {
    case pdf, jpeg, png, heic, docx, xlsx, pptx, odt, ods, odp

    /// The media type the file is stored and served with.
    public var contentType: String {
        switch self {
        case .pdf: "application/pdf"
        case .jpeg: "image/jpeg"
        case .png: "image/png"
        case .heic: "image/heic"
        case .docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        case .xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        case .pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        case .odt: "application/vnd.oasis.opendocument.text"
        case .ods: "application/vnd.oasis.opendocument.spreadsheet"
        case .odp: "application/vnd.oasis.opendocument.presentation"
        }
    }

    /// The file name extensions (lowercase, without the dot) that stand for this type.
    public var extensions: [String] {
        switch self {
        case .jpeg: ["jpg", "jpeg"]
        case .heic: ["heic", "heif"]
        default: [self.rawValue]
        }
    }

    /// How many leading bytes ``recognise(_:)`` reads at most (fewer when the file is shorter): enough for an Office
    /// file's first part names.
    public static let sniffLength = 64 * 1024

    /// What the first bytes of a file are.
    public enum Content: Sendable, Equatable {
        case allowed(FileType)
        /// A ZIP that is no Office document, gzip, RAR, 7-Zip, tar, ...
        case archive
        /// A Windows or Linux executable, a script with a `#!` line.
        case executable
        case unknown
    }

    /// Recognises a file by its first bytes (up to ``sniffLength``).
    public static func recognise(_ head: some Collection<UInt8>) -> Content {
        let bytes = Array(head.prefix(self.sniffLength))
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + prefix.count && Array(bytes[offset..<offset + prefix.count]) == prefix
        }
        if starts(Array("%PDF-".utf8)) { return .allowed(.pdf) }
        if starts([0xFF, 0xD8, 0xFF]) { return .allowed(.jpeg) }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .allowed(.png) }
        // ISO base media: a box of type 'ftyp' whose major brand is one of HEIF's.
        if starts(Array("ftyp".utf8), at: 4), bytes.count >= 12 {
            let brand = String(decoding: bytes[8..<12], as: UTF8.self)
            return ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"].contains(brand) ? .allowed(.heic) : .unknown
        }
        if starts([0x50, 0x4B, 0x03, 0x04]) { return self.zipContent(bytes) }
        if starts([0x4D, 0x5A]) || starts([0x7F, 0x45, 0x4C, 0x46]) || starts(Array("#!".utf8)) { return .executable }
        if starts([0xCA, 0xFE, 0xBA, 0xBE]) || starts([0xCF, 0xFA, 0xED, 0xFE]) || starts([0xCE, 0xFA, 0xED, 0xFE]) {
            return .executable
        }
        let archives: [[UInt8]] = [
            [0x1F, 0x8B], [0x42, 0x5A, 0x68], [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00], [0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C],
            Array("Rar!".utf8), [0x50, 0x4B, 0x05, 0x06], [0x50, 0x4B, 0x07, 0x08], [0x28, 0xB5, 0x2F, 0xFD],
        ]
        if archives.contains(where: { starts($0) }) || starts(Array("ustar".utf8), at: 257) { return .archive }
        return .unknown
    }

    /// Office documents are ZIP files with a known first entry: OOXML starts with `[Content_Types].xml` (or, from
    /// some writers, `_rels/.rels`) and has its main part (`word/document.xml`, `xl/workbook.xml`,
    /// `ppt/presentation.xml`) among the first 64 KiB; ODF starts with an uncompressed `mimetype` naming the type.
    /// Anything else in a ZIP is an archive.
    private static func zipContent(_ bytes: [UInt8]) -> Content {
        guard bytes.count >= 30 else { return .archive }
        let nameLength = Int(bytes[26]) | Int(bytes[27]) << 8
        let extraLength = Int(bytes[28]) | Int(bytes[29]) << 8
        guard bytes.count >= 30 + nameLength else { return .archive }
        let name = String(decoding: bytes[30..<30 + nameLength], as: UTF8.self)
        if name == "mimetype" {
            let start = 30 + nameLength + extraLength
            guard start < bytes.count else { return .archive }
            let value = String(decoding: bytes[start..<min(bytes.count, start + 60)], as: UTF8.self)
            for (prefix, type) in [
                ("application/vnd.oasis.opendocument.text", FileType.odt),
                ("application/vnd.oasis.opendocument.spreadsheet", .ods),
                ("application/vnd.oasis.opendocument.presentation", .odp),
            ] where value.hasPrefix(prefix) {
                // `-template` and `-master` variants are other types.
                let rest = value.dropFirst(prefix.count)
                return rest.first.map { $0 == "-" } == true ? .archive : .allowed(type)
            }
            return .archive
        }
        guard name == "[Content_Types].xml" || name == "_rels/.rels" else { return .archive }
        // The main part's name (local file headers keep names uncompressed) says which application it is; a ZIP that
        // only starts like an Office file is an archive.
        let text = String(decoding: bytes, as: UTF8.self)
        if text.contains("word/document.xml") { return .allowed(.docx) }
        if text.contains("xl/workbook.xml") { return .allowed(.xlsx) }
        if text.contains("ppt/presentation.xml") { return .allowed(.pptx) }
        return .archive
    }

    /// The extension of a file name, lowercased; empty without one.
    public static func fileExtension(of name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }

    /// Checks a file's first bytes against its name: the type both agree on, or why the file is refused.
    public static func check(head: some Collection<UInt8>, fileName: String) throws(FileTypeError) -> FileType {
        guard !head.isEmpty else { throw .empty }
        let fileExtension = Self.fileExtension(of: fileName)
        let named = Self.allCases.first { $0.extensions.contains(fileExtension) }
        switch Self.recognise(head) {
        case .archive: throw .archive
        case .executable: throw .mismatch(fileExtension: fileExtension)
        case .unknown:
            throw named == nil ? .notAllowed(fileExtension: fileExtension) : .mismatch(fileExtension: fileExtension)
        case .allowed(let type):
            guard let named else { throw .notAllowed(fileExtension: fileExtension) }
            guard named == type else { throw .mismatch(fileExtension: fileExtension) }
            return type
        }
    }
}

/// Why a file's type is refused; each reads as a sentence a resident understands.
public enum FileTypeError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case archive
    case notAllowed(fileExtension: String)
    /// The content is not what the extension says (a PDF named .png, a program named .pdf).
    case mismatch(fileExtension: String)

    public static var allowedList: String {
        "PDF, JPEG, PNG, HEIC, Word, Excel and PowerPoint (.docx, .xlsx, .pptx) or OpenDocument (.odt, .ods, .odp)"
    }

    public var description: String {
        switch self {
        case .empty: "The file is empty."
        case .archive: "Archives such as ZIP files are not accepted: upload the documents in them one by one."
        case .notAllowed(let fileExtension):
            fileExtension.isEmpty
                ? "The file name has no extension. Accepted are \(Self.allowedList)."
                : "Files of type .\(fileExtension) are not accepted. Accepted are \(Self.allowedList)."
        case .mismatch(let fileExtension):
            "The content of this file is not what its name says (.\(fileExtension)). Accepted are \(Self.allowedList), with their own extension."
        }
    }
}
