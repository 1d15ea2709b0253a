package Test::Nginx::Harness::Server;

# Part of the bundled Test::Nginx::Socket-compatible harness: nginx process
# management (start, wait for the port, HUP reload, graceful stop, kill of
# left-overs) and valgrind integration.

use strict;
use warnings;
use POSIX qw(WNOHANG setsid);
use Time::HiRes ();
use IO::Socket::INET ();
use File::Path ();

sub new {
    my ($class, %a) = @_;
    return bless { %a, pid => undef, child => undef, started_at => undef }, $class;
}

sub servroot   { $_[0]{servroot} }
sub pid_file   { "$_[0]{servroot}/logs/nginx.pid" }
sub conf_file  { "$_[0]{servroot}/conf/nginx.conf" }
sub err_log    { "$_[0]{servroot}/logs/error.log" }
sub stderr_log { "$_[0]{servroot}/logs/nginx.stderr" }
sub vg_log     { "$_[0]{servroot}/logs/valgrind.log" }

# ------------------------------------------------------------ /proc utils --

sub proc_stat {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return;
    my $s = do { local $/; <$fh> };
    close $fh;
    return unless defined $s;
    my $r = rindex($s, ')');
    return if $r < 0;
    my @f = split ' ', substr($s, $r + 2);
    return { state => $f[0], ppid => $f[1] };
}

sub proc_cmdline {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/cmdline" or return '';
    my $s = do { local $/; <$fh> };
    close $fh;
    $s = '' unless defined $s;
    $s =~ s/\0/ /g;
    return $s;
}

sub proc_alive {
    my ($self_or_pid, $maybe) = @_;
    my $pid = ref $self_or_pid ? $maybe : $self_or_pid;
    return 0 unless $pid && $pid =~ /^\d+$/;
    # reap our own child if it has exited
    if (ref $self_or_pid && $self_or_pid->{child} && $self_or_pid->{child} == $pid) {
        my $w = waitpid($pid, WNOHANG);
        if ($w == $pid) {
            $self_or_pid->{child_status} = $?;
            $self_or_pid->{child} = undef;
            return 0;
        }
    }
    return 0 unless kill 0, $pid;
    my $st = proc_stat($pid);
    return 0 if !$st || $st->{state} eq 'Z' || $st->{state} eq 'X';
    return 1;
}

sub proc_children {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return;
    for my $d (readdir $dh) {
        next unless $d =~ /^\d+$/;
        my $st = proc_stat($d) or next;
        push @kids, $d if $st->{ppid} == $ppid && $st->{state} ne 'Z';
    }
    closedir $dh;
    return sort { $a <=> $b } @kids;
}

sub read_pid_file {
    my ($self) = @_;
    open my $fh, '<', $self->pid_file or return;
    my $pid = <$fh>;
    close $fh;
    return unless defined $pid && $pid =~ /(\d+)/;
    return $1;
}

# ------------------------------------------------------------------ start --

sub port_open {
    my ($port, $addr) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr || '127.0.0.1',
                                  PeerPort => $port, Proto => 'tcp',
                                  Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# Kill whatever nginx a previous run (or block) left behind in this
# servroot: the process in the pid file, and any nginx whose command line
# names this servroot as its prefix (e.g. one whose pid file was lost).
# Callers hold the servroot lock, so no other live run owns these.
sub kill_leftover {
    my ($self) = @_;
    my %pids;
    my $pid = $self->read_pid_file;
    if ($pid && proc_alive($pid) && proc_cmdline($pid) =~ /nginx|valgrind|memcheck/) {
        $pids{$pid} = 1;
    }
    my $root = $self->{servroot};
    if (opendir my $dh, '/proc') {
        for my $d (readdir $dh) {
            next unless $d =~ /^\d+$/ && $d != $$;
            my $cmd = proc_cmdline($d);
            next unless $cmd =~ /nginx/ && $cmd =~ /(?:^|\s)-p\s+\Q$root\E\/?(?:\s|$)/;
            my $st = proc_stat($d) or next;
            # only masters / single processes (workers go with them)
            my $pcmd = proc_cmdline($st->{ppid});
            next if $pcmd =~ /nginx/ && $pcmd =~ /\Q$root\E/;
            $pids{$d} = 1;
        }
        closedir $dh;
    }
    for my $p (sort keys %pids) {
        warn "WARNING: killing left-over nginx process $p (" . proc_cmdline($p) . ")\n";
        $self->_terminate($p, 5, 0);
    }
}

# start() -> undef on success, error string otherwise.
sub start {
    my ($self, %a) = @_;
    my $valgrind = $a{valgrind};
    my $bin = $self->{binary};
    my @cmd = ($bin, '-p', "$self->{servroot}/", '-c', $self->conf_file);
    push @cmd, '-e', $a{error_log} if $a{error_log};
    if ($valgrind) {
        unshift @cmd, @$valgrind;
    }
    $self->{cmd} = \@cmd;
    $self->{child_status} = undef;
    $self->{pid} = undef;
    unlink $self->pid_file;

    my $child = fork;
    return "fork failed: $!" unless defined $child;
    if (!$child) {
        setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->stderr_log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        { no warnings q(exec); exec { $cmd[0] } @cmd; }
        print STDERR "exec @cmd failed: $!\n";
        POSIX::_exit(127);
    }
    $self->{started_at} = Time::HiRes::time();

    my $startup = $a{startup_timeout} || 10;
    my $deadline = Time::HiRes::time() + $startup;

    if (!$valgrind) {
        # daemon on: the command returns once nginx has daemonized (or failed)
        my $st;
        while (1) {
            my $w = waitpid($child, WNOHANG);
            if ($w == $child) { $st = $?; last }
            if (Time::HiRes::time() > $deadline) {
                kill 'KILL', $child;
                waitpid($child, 0);
                return "nginx did not return from daemonizing within ${startup}s";
            }
            Time::HiRes::sleep(0.01);
        }
        if ($st != 0) {
            return sprintf("nginx exited with status %d%s", $st >> 8,
                           ($st & 127) ? " (signal " . ($st & 127) . ")" : '');
        }
    } else {
        $self->{child} = $child;
    }

    # wait for the pid file and the port
    while (1) {
        my $pid = $self->read_pid_file;
        if ($pid && $valgrind) { $pid = $child }
        if ($pid && !proc_alive($self, $pid)) {
            return "nginx (pid $pid) died during startup" .
                (defined $self->{child_status} ? sprintf(" with status %d", $self->{child_status} >> 8) : '');
        }
        if ($valgrind && !proc_alive($self, $child)) {
            return sprintf("nginx under valgrind exited during startup (status %d)",
                           ($self->{child_status} // 0) >> 8);
        }
        if ($pid && port_open($a{port})) {
            $self->{pid} = $pid;
            return undef;
        }
        if (Time::HiRes::time() > $deadline) {
            $self->{pid} = $pid;
            return "nginx did not accept connections on port $a{port} within ${startup}s"
                . ($pid ? " (pid $pid)" : " (no pid file)");
        }
        Time::HiRes::sleep(0.02);
    }
}

sub pid { $_[0]{pid} }

sub alive {
    my ($self) = @_;
    return 0 unless $self->{pid};
    return proc_alive($self, $self->{pid});
}

# ----------------------------------------------------------------- reload --

# reload() -> undef on success, error string otherwise.  Sends SIGHUP to the
# master and waits until every old worker has gone and new workers run, or
# until the master logs an [emerg] (reload refused).
sub reload {
    my ($self, %a) = @_;
    my $master = $self->{pid};
    return "no nginx master running" unless $master && $self->alive;
    my @old = proc_children($master);
    my %old = map { $_ => 1 } @old;
    my $log = $self->err_log;
    my $off = -s $log || 0;
    kill 'HUP', $master or return "cannot send HUP to $master: $!";
    my $deadline = Time::HiRes::time() + ($a{timeout} || 10);
    while (1) {
        Time::HiRes::sleep(0.02);
        return "nginx master $master died after HUP" unless $self->alive;
        my $new = '';
        if (open my $fh, '<', $log) {
            seek $fh, $off, 0;
            local $/;
            $new = <$fh> // '';
            close $fh;
        }
        if ($new =~ /^(.*\[emerg\].*)$/m) {
            return "reload failed: $1";
        }
        my @kids = proc_children($master);
        if (@kids && !grep { $old{$_} } @kids) {
            # make sure the new workers really accept connections
            return undef if port_open($a{port});
        }
        if (Time::HiRes::time() > $deadline) {
            return "timed out waiting for the reload (old workers: @old; now: @kids)";
        }
    }
}

# ------------------------------------------------------------------- stop --

sub _terminate {
    my ($self, $pid, $grace, $is_child) = @_;
    my @kids = proc_children($pid);
    kill 'QUIT', $pid;
    my $deadline = Time::HiRes::time() + $grace;
    my $killed = 0;
    while (proc_alive($self, $pid)) {
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $pid;
            $killed = 1;
            my $d2 = Time::HiRes::time() + 5;
            while (proc_alive($self, $pid) && Time::HiRes::time() < $d2) {
                Time::HiRes::sleep(0.02);
            }
            last;
        }
        Time::HiRes::sleep(0.02);
    }
    # orphaned workers (master killed): kill them too
    for my $k (@kids) {
        kill 'KILL', $k if proc_alive($k) && proc_cmdline($k) =~ /nginx/;
    }
    return $killed;
}

# stop(grace => secs) -> { was_alive, killed, child_status }
sub stop {
    my ($self, %a) = @_;
    my $pid = $self->{pid} || $self->read_pid_file;
    my $info = { was_alive => 0, killed => 0 };
    if ($pid && proc_alive($self, $pid)) {
        $info->{was_alive} = 1;
        $info->{killed} = $self->_terminate($pid, $a{grace} || 5, 0);
    }
    if ($self->{child}) {
        # valgrind child: reap it (it may have exited already)
        my $w = waitpid($self->{child}, 0);
        $self->{child_status} = $? if $w == $self->{child};
        $self->{child} = undef;
    }
    $info->{child_status} = $self->{child_status};
    $self->{pid} = undef;
    return $info;
}

1;
