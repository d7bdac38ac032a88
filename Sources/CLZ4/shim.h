// The LZ4 frame format API (lz4frame.h, stable since 1.8; Debian: liblz4-dev).
#include <lz4frame.h>
