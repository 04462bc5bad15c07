/* Multiboot (v1) entry of the QEMU guest payload. QEMU's -kernel loader finds
 * the header in the first 8 KiB, loads the 32-bit ELF and jumps here in flat
 * 32-bit protected mode (no paging, interrupts off) with EAX = 0x2BADB002 and
 * EBX = the multiboot information structure. We set a stack and call
 * guest_main(magic, info); it never returns. Leaves out: an IDT (the payload
 * takes no interrupts), long mode, modules. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, give memory info */

  .section .multiboot, "a"
  .align 4
  .long MB_MAGIC
  .long MB_FLAGS
  .long -(MB_MAGIC + MB_FLAGS)

  .text
  .globl _start
_start:
  cli
  mov $stack_top, %esp
  push %ebx
  push %eax
  call guest_main
1: hlt
  jmp 1b

  .bss
  .align 16
  .space 65536
stack_top:
