//go:build amd64 && !purego

#include "textflag.h"

// Element-wise binary kernels over 128-byte blocks (four YMM registers):
// dst[i] = a[i] op b[i] for nbytes bytes, nbytes a multiple of 128. Each
// lane computes what the scalar instruction computes, so results are
// bit-identical to the Go loops they replace (no reassociation). dst may
// equal a or b.

// func vaddpd(dst, a, b unsafe.Pointer, nbytes int)
TEXT ·vaddpd(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ nbytes+24(FP), CX
	XORQ AX, AX
vaddpd_loop:
	CMPQ AX, CX
	JAE vaddpd_done
	VMOVUPD 0(SI)(AX*1), Y0
	VMOVUPD 32(SI)(AX*1), Y1
	VMOVUPD 64(SI)(AX*1), Y2
	VMOVUPD 96(SI)(AX*1), Y3
	VMOVUPD 0(DX)(AX*1), Y4
	VMOVUPD 32(DX)(AX*1), Y5
	VMOVUPD 64(DX)(AX*1), Y6
	VMOVUPD 96(DX)(AX*1), Y7
	VADDPD Y4, Y0, Y0
	VADDPD Y5, Y1, Y1
	VADDPD Y6, Y2, Y2
	VADDPD Y7, Y3, Y3
	VMOVUPD Y0, 0(DI)(AX*1)
	VMOVUPD Y1, 32(DI)(AX*1)
	VMOVUPD Y2, 64(DI)(AX*1)
	VMOVUPD Y3, 96(DI)(AX*1)
	ADDQ $128, AX
	JMP vaddpd_loop
vaddpd_done:
	VZEROUPPER
	RET

// func vaddps(dst, a, b unsafe.Pointer, nbytes int)
TEXT ·vaddps(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ nbytes+24(FP), CX
	XORQ AX, AX
vaddps_loop:
	CMPQ AX, CX
	JAE vaddps_done
	VMOVUPS 0(SI)(AX*1), Y0
	VMOVUPS 32(SI)(AX*1), Y1
	VMOVUPS 64(SI)(AX*1), Y2
	VMOVUPS 96(SI)(AX*1), Y3
	VMOVUPS 0(DX)(AX*1), Y4
	VMOVUPS 32(DX)(AX*1), Y5
	VMOVUPS 64(DX)(AX*1), Y6
	VMOVUPS 96(DX)(AX*1), Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VMOVUPS Y0, 0(DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	ADDQ $128, AX
	JMP vaddps_loop
vaddps_done:
	VZEROUPPER
	RET

// func vmulpd(dst, a, b unsafe.Pointer, nbytes int)
TEXT ·vmulpd(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ nbytes+24(FP), CX
	XORQ AX, AX
vmulpd_loop:
	CMPQ AX, CX
	JAE vmulpd_done
	VMOVUPD 0(SI)(AX*1), Y0
	VMOVUPD 32(SI)(AX*1), Y1
	VMOVUPD 64(SI)(AX*1), Y2
	VMOVUPD 96(SI)(AX*1), Y3
	VMOVUPD 0(DX)(AX*1), Y4
	VMOVUPD 32(DX)(AX*1), Y5
	VMOVUPD 64(DX)(AX*1), Y6
	VMOVUPD 96(DX)(AX*1), Y7
	VMULPD Y4, Y0, Y0
	VMULPD Y5, Y1, Y1
	VMULPD Y6, Y2, Y2
	VMULPD Y7, Y3, Y3
	VMOVUPD Y0, 0(DI)(AX*1)
	VMOVUPD Y1, 32(DI)(AX*1)
	VMOVUPD Y2, 64(DI)(AX*1)
	VMOVUPD Y3, 96(DI)(AX*1)
	ADDQ $128, AX
	JMP vmulpd_loop
vmulpd_done:
	VZEROUPPER
	RET

// func vmulps(dst, a, b unsafe.Pointer, nbytes int)
TEXT ·vmulps(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ nbytes+24(FP), CX
	XORQ AX, AX
vmulps_loop:
	CMPQ AX, CX
	JAE vmulps_done
	VMOVUPS 0(SI)(AX*1), Y0
	VMOVUPS 32(SI)(AX*1), Y1
	VMOVUPS 64(SI)(AX*1), Y2
	VMOVUPS 96(SI)(AX*1), Y3
	VMOVUPS 0(DX)(AX*1), Y4
	VMOVUPS 32(DX)(AX*1), Y5
	VMOVUPS 64(DX)(AX*1), Y6
	VMOVUPS 96(DX)(AX*1), Y7
	VMULPS Y4, Y0, Y0
	VMULPS Y5, Y1, Y1
	VMULPS Y6, Y2, Y2
	VMULPS Y7, Y3, Y3
	VMOVUPS Y0, 0(DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	ADDQ $128, AX
	JMP vmulps_loop
vmulps_done:
	VZEROUPPER
	RET

// func vpaddq(dst, a, b unsafe.Pointer, nbytes int)
TEXT ·vpaddq(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ nbytes+24(FP), CX
	XORQ AX, AX
vpaddq_loop:
	CMPQ AX, CX
	JAE vpaddq_done
	VMOVDQU 0(SI)(AX*1), Y0
	VMOVDQU 32(SI)(AX*1), Y1
	VMOVDQU 64(SI)(AX*1), Y2
	VMOVDQU 96(SI)(AX*1), Y3
	VMOVDQU 0(DX)(AX*1), Y4
	VMOVDQU 32(DX)(AX*1), Y5
	VMOVDQU 64(DX)(AX*1), Y6
	VMOVDQU 96(DX)(AX*1), Y7
	VPADDQ Y4, Y0, Y0
	VPADDQ Y5, Y1, Y1
	VPADDQ Y6, Y2, Y2
	VPADDQ Y7, Y3, Y3
	VMOVDQU Y0, 0(DI)(AX*1)
	VMOVDQU Y1, 32(DI)(AX*1)
	VMOVDQU Y2, 64(DI)(AX*1)
	VMOVDQU Y3, 96(DI)(AX*1)
	ADDQ $128, AX
	JMP vpaddq_loop
vpaddq_done:
	VZEROUPPER
	RET

// func vpaddd(dst, a, b unsafe.Pointer, nbytes int)
TEXT ·vpaddd(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ nbytes+24(FP), CX
	XORQ AX, AX
vpaddd_loop:
	CMPQ AX, CX
	JAE vpaddd_done
	VMOVDQU 0(SI)(AX*1), Y0
	VMOVDQU 32(SI)(AX*1), Y1
	VMOVDQU 64(SI)(AX*1), Y2
	VMOVDQU 96(SI)(AX*1), Y3
	VMOVDQU 0(DX)(AX*1), Y4
	VMOVDQU 32(DX)(AX*1), Y5
	VMOVDQU 64(DX)(AX*1), Y6
	VMOVDQU 96(DX)(AX*1), Y7
	VPADDD Y4, Y0, Y0
	VPADDD Y5, Y1, Y1
	VPADDD Y6, Y2, Y2
	VPADDD Y7, Y3, Y3
	VMOVDQU Y0, 0(DI)(AX*1)
	VMOVDQU Y1, 32(DI)(AX*1)
	VMOVDQU Y2, 64(DI)(AX*1)
	VMOVDQU Y3, 96(DI)(AX*1)
	ADDQ $128, AX
	JMP vpaddd_loop
vpaddd_done:
	VZEROUPPER
	RET
