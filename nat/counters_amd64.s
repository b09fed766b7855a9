#include "textflag.h"

// func addCounts(pkts *uint32, bytes *uint64, size uint64)
TEXT ·addCounts(SB), NOSPLIT|NOFRAME, $0-24
	MOVQ pkts+0(FP), AX
	MOVQ bytes+8(FP), BX
	MOVQ size+16(FP), CX
	ADDL $1, (AX)
	ADDQ CX, (BX)
	RET
