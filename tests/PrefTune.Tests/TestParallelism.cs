using Xunit;

// One test at a time: libtorch work from several test collections on several threads in one process
// crashed once inside Adam.step (a Scalar read back as garbage), and TorchSharp documents no thread-safety
// guarantee (dotnet/TorchSharp#941). The services themselves serialise libtorch work behind one gate each.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
