// Advanced parameters (ZSTD_c_checksumFlag, ZSTD_d_windowLogMax) are in the stable API since 1.4.0.
#include <zstd.h>
