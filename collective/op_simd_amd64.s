//go:build amd64 && !purego

#include "textflag.h"

// Element-wise binary kernels over 128-byte blocks (four YMM registers):
// dst[i] = a[i] op b[i] for nbytes bytes, nbytes a multiple of 128. Each
// lane computes what the scalar instruction computes, so results are
// bit-identical to the Go loops they replace (no reassociation). dst may
// equal a or b. MOV is the load/store of the type, OP the operation;
// labels are local to each TEXT block.

#define BINOP(name, MOV, OP) \
TEXT name(SB), NOSPLIT, $0-32 \
	MOVQ dst+0(FP), DI; \
	MOVQ a+8(FP), SI; \
	MOVQ b+16(FP), DX; \
	MOVQ nbytes+24(FP), CX; \
	XORQ AX, AX; \
loop: \
	CMPQ AX, CX; \
	JAE done; \
	MOV 0(SI)(AX*1), Y0; \
	MOV 32(SI)(AX*1), Y1; \
	MOV 64(SI)(AX*1), Y2; \
	MOV 96(SI)(AX*1), Y3; \
	MOV 0(DX)(AX*1), Y4; \
	MOV 32(DX)(AX*1), Y5; \
	MOV 64(DX)(AX*1), Y6; \
	MOV 96(DX)(AX*1), Y7; \
	OP Y4, Y0, Y0; \
	OP Y5, Y1, Y1; \
	OP Y6, Y2, Y2; \
	OP Y7, Y3, Y3; \
	MOV Y0, 0(DI)(AX*1); \
	MOV Y1, 32(DI)(AX*1); \
	MOV Y2, 64(DI)(AX*1); \
	MOV Y3, 96(DI)(AX*1); \
	ADDQ $128, AX; \
	JMP loop; \
done: \
	VZEROUPPER; \
	RET;

// func vaddpd(dst, a, b unsafe.Pointer, nbytes int)
BINOP(·vaddpd, VMOVUPD, VADDPD)

// func vaddps(dst, a, b unsafe.Pointer, nbytes int)
BINOP(·vaddps, VMOVUPS, VADDPS)

// func vmulpd(dst, a, b unsafe.Pointer, nbytes int)
BINOP(·vmulpd, VMOVUPD, VMULPD)

// func vmulps(dst, a, b unsafe.Pointer, nbytes int)
BINOP(·vmulps, VMOVUPS, VMULPS)

// func vpaddq(dst, a, b unsafe.Pointer, nbytes int)
BINOP(·vpaddq, VMOVDQU, VPADDQ)

// func vpaddd(dst, a, b unsafe.Pointer, nbytes int)
BINOP(·vpaddd, VMOVDQU, VPADDD)
