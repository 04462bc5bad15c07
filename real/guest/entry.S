/*
 * Payload entry. The host loader already put the vCPU in 64-bit long mode
 * (page tables, GDT, EFER, CR0/CR3/CR4 through KVM_SET_SREGS) and pointed RIP
 * here, so no mode switch happens in the guest: set the stack, run the C code,
 * halt forever if it returns.
 */
  .section .text.entry, "ax"
  .globl _start
_start:
  mov $__stack_top, %rsp
  call payload_main
1:
  hlt
  jmp 1b
