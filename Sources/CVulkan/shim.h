// Vulkan is loaded at run time (dlopen) so that a binary built with Vulkan support still
// starts, and falls back to the CPU, on machines without libvulkan: no prototypes, only
// the PFN_* function pointer types.
#define VK_NO_PROTOTYPES 1
#include <vulkan/vulkan.h>
