import ArgumentParser
import PSICVulkan

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List the Vulkan devices psic can use.")

    func run() throws {
        do {
            let devices = try VulkanBackend.availableDevices()
            if devices.isEmpty { print("no Vulkan devices") }
            for d in devices { print(d) }
        } catch {
            print("Vulkan unavailable: \(error)")
            print("The CPU backend will be used (--backend cpu).")
        }
    }
}
