// libdeflate (Debian: libdeflate-dev): its CRC-32 (the zlib/gzip polynomial, PCLMUL-accelerated) checksums the collector's WAL records.
#include <libdeflate.h>
